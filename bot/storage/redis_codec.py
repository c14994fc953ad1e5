"""What the Redis store's modules share: time scores, the ledger's commands, audit elements."""

from __future__ import annotations

import base64
import functools
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from bot.records import AccountRecord, AuditEntry, Outbound, SendKind, SendRecord
from bot.storage import keys
from bot.storage.redis_pack import pack, unpack

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The frequency caps look back 7 days; the ledger keeps 8.
_LEDGER_KEEP_US = 8 * 24 * 3600 * 1_000_000

# KEYS: list   ARGV: JSON, maximum length
PUSH_CAPPED = b"""
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return 1
"""


def as_text(value: bytes | str) -> str:
    """A reply's bytes as text (ids, keys, plain values)."""
    return value.decode() if isinstance(value, bytes) else value


@functools.lru_cache(maxsize=4096)
def account_record(raw: bytes) -> AccountRecord:
    """Account records change rarely and are read for every event: each stored version is
    validated once (the model is frozen, so sharing it is safe)."""
    return AccountRecord.model_validate_json(raw)


def score(at: datetime) -> int:
    """Microseconds since the epoch: exact in a sorted-set score (a double) until year 2255."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"timer times must be timezone-aware, got {at!r}")
    return (at - _EPOCH) // _MICROSECOND


# The sandbox carrier keeps the latest messages only (as the memory store does).
SANDBOX_MAX = 10_000


def sandbox_commands(message: Outbound) -> list[tuple[Any, ...]]:
    """Records a message the sandbox carrier "sent": plain commands, safe to repeat (the same
    member again), so they may precede a script in a group (see bot.storage.redis)."""
    return [
        # Ordered as recorded (µs of this machine's clock), like the list it replaces.
        ("ZADD", keys.SANDBOX, time.time_ns() // 1000, message.model_dump_json()),
        ("ZREMRANGEBYRANK", keys.SANDBOX, 0, -(SANDBOX_MAX + 1)),
    ]


# A ledger entry as a sorted-set member: "<kind> <message id> <text hash> <account id>", the
# two hex values in base64 (url-safe, unpadded), the time being the entry's score. About 50
# bytes instead of about 180 of JSON: under Redis's zset-max-listpack-value (64 bytes) the
# phone's set stays a listpack, 1.1 KB -> about 0.2 KB per phone (bench/campaign.py). Ids
# that are not our hex ids are stored as JSON, as every entry was before; both are read.
_KINDS: dict[str, SendKind] = {"p": "proactive", "r": "reply", "c": "confirmation"}
_KIND_CODES = {kind: code for code, kind in _KINDS.items()}
_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
_TEXT_HASH = re.compile(r"[0-9a-f]{24}")


def _b64(hex_text: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hex_text)).rstrip(b"=").decode()


def _hex(b64_text: str) -> str:
    return base64.urlsafe_b64decode(b64_text + "=" * (-len(b64_text) % 4)).hex()


def ledger_member(record: SendRecord) -> str:
    """The entry's member in the phone's ledger (the same record gives the same member, so
    releasing a charge removes exactly what was charged)."""
    if _MESSAGE_ID.fullmatch(record.message_id) and _TEXT_HASH.fullmatch(record.text_hash):
        code = _KIND_CODES[record.kind]
        mid, digest = _b64(record.message_id), _b64(record.text_hash)
        return f"{code} {mid} {digest} {record.account_id}"
    return record.model_dump_json()


@functools.lru_cache(maxsize=8192)
def ledger_record(member: bytes, at_score: bytes) -> SendRecord:
    """A ledger entry read back: its member and its score (µs). A phone's ledger is read
    before every send to it, for 7 days: each entry (immutable, frozen) is parsed once."""
    if member[:1] == b"{":
        return SendRecord.model_validate_json(member)
    code, mid, digest, account_id = member.decode().split(" ", 3)
    return SendRecord(
        at=_EPOCH + int(float(at_score)) * _MICROSECOND,
        account_id=account_id,
        message_id=_hex(mid),
        kind=_KINDS[code],
        text_hash=_hex(digest),
    )


def ledger_records(reply: Sequence[bytes]) -> list[SendRecord]:
    """The entries of a ZRANGE ... WITHSCORES reply (member, score, member, score ...)."""
    return [ledger_record(m, at) for m, at in zip(reply[::2], reply[1::2], strict=True)]


def ledger_commands(phone: str, record: SendRecord) -> list[tuple[Any, ...]]:
    """Adds a send to the phone's ledger, drops what no cap looks at any more (older than 8
    days) and keeps the key only as long. Plain commands, no script: each is safe to repeat,
    so they can share a group with anything (see the module docstring), and the trim and the
    expiry are housekeeping that the next send redoes if a crash skips them."""
    at = score(record.at)
    key = keys.sends(phone)
    return [
        ("ZADD", key, at, ledger_member(record)),
        ("ZREMRANGEBYSCORE", key, "-inf", at - _LEDGER_KEEP_US),
        ("EXPIRE", key, _LEDGER_KEEP_US // 1_000_000),
    ]


def ledger_release(phone: str, record: SendRecord) -> tuple[Any, ...]:
    """Takes a charge back: its member as written now, and as JSON (an entry written before
    the compact members; else the caps would count it for 8 days)."""
    return ("ZREM", keys.sends(phone), ledger_member(record), record.model_dump_json())


AUDIT_ENTRIES = TypeAdapter(list[AuditEntry])


def audit_element(entries: Sequence[AuditEntry]) -> bytes | str:
    """One write's audit entries (an event's, a gate decision's) as one element of the
    account's audit list: one JSON array, dumped in one call and compressed (redis_pack; ''
    for none). One dump per entry cost twice as much, and a message makes about seven entries
    (bench/inbound.py)."""
    return pack(AUDIT_ENTRIES.dump_json(list(entries))) if entries else ""


def newest_entries(elements: list[bytes], limit: int) -> list[AuditEntry]:
    """The newest ``limit`` entries of the last ``limit`` elements of an audit list (every
    element holds at least one entry, so they hold the newest ``limit`` or all there are)."""
    return [entry for element in elements for entry in audit_entries(element)][-limit:]


def audit_entries(element: bytes) -> list[AuditEntry]:
    """The entries of one element of an audit list, in any of the forms it was written."""
    data = unpack(element)
    if data[:1] == b"[":
        return AUDIT_ENTRIES.validate_json(data)
    return [AuditEntry.model_validate_json(data)]  # one entry per element (older data)

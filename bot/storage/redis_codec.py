"""What the Redis store's modules share: time scores, the ledger's commands, audit elements."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from bot.records import AuditEntry, Outbound, SendRecord
from bot.storage import keys

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


def ledger_commands(phone: str, record: SendRecord) -> list[tuple[Any, ...]]:
    """Adds a send to the phone's ledger, drops what no cap looks at any more (older than 8
    days) and keeps the key only as long. Plain commands, no script: each is safe to repeat,
    so they can share a group with anything (see the module docstring), and the trim and the
    expiry are housekeeping that the next send redoes if a crash skips them."""
    at = score(record.at)
    key = keys.sends(phone)
    return [
        ("ZADD", key, at, record.model_dump_json()),
        ("ZREMRANGEBYSCORE", key, "-inf", at - _LEDGER_KEEP_US),
        ("EXPIRE", key, _LEDGER_KEEP_US // 1_000_000),
    ]


AUDIT_ENTRIES = TypeAdapter(list[AuditEntry])


def audit_element(entries: Sequence[AuditEntry]) -> bytes | str:
    """One write's audit entries (an event's, a gate decision's) as one element of the
    account's audit list: one JSON array, dumped in one call ('' for none). One dump per
    entry cost twice as much, and a message makes about seven entries (bench/inbound.py)."""
    return AUDIT_ENTRIES.dump_json(list(entries)) if entries else ""

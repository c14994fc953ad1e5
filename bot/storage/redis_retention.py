"""The Redis store's retention steps (bot.retention): safe beside a running service.

Nothing here takes an account's lock: each change is one compare-and-set script on one key,
which applies only if every element it rewrites is still, byte for byte, what was read. An
item that changed meanwhile (a receipt moved a record on, an agent took an unmatched message)
is left as it is and reported, for the next run. Writers only append to the lists swept here
(RPUSH), so the indexes read stay valid; the sandbox and receipts lists are trimmed at their
head by their writers, which is why those are removed by value (ZREM, LREM), not by index.
Work is bounded: at most ``BATCH`` elements per script.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.desk.case import CaseEntry
from bot.outbound.record import OutboundRecord
from bot.records import AuditEntry, Outbound
from bot.storage import keys
from bot.storage import retention_items as ri
from bot.storage.base import AuditEdit, KeptKind, NoteEdit, RecordEdit, RetentionAction
from bot.storage.redis_codec import audit_element, audit_entries
from bot.storage.redis_pack import pack_versioned, unpack
from bot.storage.resp import Connection
from bot.transport.inbound import InboundSms

log = logging.getLogger(__name__)

BATCH = 500
# An element no writer can produce (never JSON): marks what the script deletes by index.
_TOMBSTONE = "\x00smsbot:retention:deleted"

# KEYS: list   ARGV: tombstone, then (index, element as read, new element or '' to delete)...
# All or nothing: 0 if any element is no longer what was read.
_EDIT_LIST = b"""
for i = 2, #ARGV, 3 do
  if redis.call('LINDEX', KEYS[1], tonumber(ARGV[i])) ~= ARGV[i + 1] then return 0 end
end
local gone = false
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '' then
    redis.call('LSET', KEYS[1], tonumber(ARGV[i]), ARGV[1])
    gone = true
  else
    redis.call('LSET', KEYS[1], tonumber(ARGV[i]), ARGV[i + 2])
  end
end
if gone then redis.call('LREM', KEYS[1], 0, ARGV[1]) end
return 1
"""

# KEYS: hash   ARGV: (field, value as read, new value)...   All or nothing, as above.
_EDIT_HASH = b"""
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return 0 end
end
for i = 1, #ARGV, 3 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
return 1
"""

# KEYS: list   ARGV: elements to remove (each once, by value: a missing one is skipped)
_REMOVE_VALUES = b"""
local n = 0
for i = 1, #ARGV do n = n + redis.call('LREM', KEYS[1], 1, ARGV[i]) end
return n
"""

SCRIPTS = (_EDIT_LIST, _EDIT_HASH, _REMOVE_VALUES)

_KEPT_LISTS = {
    "unmatched": keys.UNMATCHED,
    "unmatched_handled": keys.UNMATCHED_HANDLED,
    "unmatched_receipts": keys.UNMATCHED_RECEIPTS,
}


def _chunks(seq: list[Any], n: int) -> list[list[Any]]:
    return [seq[i : i + n] for i in range(0, len(seq), n)]


class RedisRetention:
    _pipe: Connection

    async def edit_audit(
        self, account_id: str, edit: AuditEdit, *, apply: bool
    ) -> list[tuple[str, RetentionAction]]:
        key = keys.audit(account_id)
        # Per changed element: (index, element as read, new element, what it does).
        changes: list[tuple[int, bytes, bytes | str, list[tuple[str, RetentionAction]]]] = []
        n = 0
        for index, element in enumerate(await self._pipe.one("LRANGE", key, 0, -1)):
            kept: list[AuditEntry] = []
            did: list[tuple[str, RetentionAction]] = []
            for entry in audit_entries(element):
                new = edit(entry)
                if new is None or new is not entry:
                    did.append((ri.audit_item(n, entry), "delete" if new is None else "redact"))
                if new is not None:
                    kept.append(new)
                n += 1
            if did:
                changes.append((index, element, audit_element(kept), did))
        if not apply:
            return [d for c in changes for d in c[3]]
        done: list[tuple[str, RetentionAction]] = []
        # Highest indexes first: a chunk's deletions never move what a later chunk names.
        for chunk in _chunks(changes[::-1], BATCH):
            args = [a for index, was, now, _ in chunk for a in (index, was, now)]
            if not await self._pipe.one("EVAL", _EDIT_LIST, 1, key, _TOMBSTONE, *args):
                log.warning("retention: an audit changed meanwhile; left for the next run")
                break
            done += [d for c in chunk for d in c[3]]
        return sorted(done, key=lambda d: int(d[0].split(":", 1)[0]))

    async def edit_outbound(self, account_id: str, edit: RecordEdit, *, apply: bool) -> list[str]:
        key = keys.outbound(account_id)
        raw = await self._pipe.one("HGETALL", key)
        changes: list[tuple[bytes, bytes, bytes]] = []
        for field, value in zip(raw[::2], raw[1::2], strict=True):
            new = edit(OutboundRecord.model_validate_json(unpack(value)))
            if new is not None:
                stored = new.model_dump_json(exclude_none=True)
                changes.append((field, value, pack_versioned(stored, new.version)))
        if not apply:
            return [f.decode() for f, _, _ in changes]
        done: list[str] = []
        for chunk in _chunks(changes, BATCH):
            args = [a for c in chunk for a in c]
            if not await self._pipe.one("EVAL", _EDIT_HASH, 1, key, *args):
                log.warning("retention: a record changed meanwhile; left for the next run")
                break
            done += [f.decode() for f, _, _ in chunk]
        return done

    async def edit_case_notes(self, account_id: str, edit: NoteEdit, *, apply: bool) -> list[str]:
        ids = [i.decode() for i in await self._pipe.one("LRANGE", keys.cases(account_id), 0, -1)]
        done: list[str] = []
        for case_id in ids:
            key = keys.closed_case_log(account_id, case_id)
            changes: list[tuple[int, bytes, str]] = []
            notes = 0
            for index, element in enumerate(await self._pipe.one("LRANGE", key, 0, -1)):
                entry = CaseEntry.model_validate_json(element)
                if entry.kind != "note":
                    continue
                new = edit(entry)
                if new is not None:
                    changes.append((index, element, new.model_dump_json()))
                    done.append(f"{case_id}/{notes}")
                notes += 1
            if apply and changes:
                args = [a for c in changes[:BATCH] for a in c]
                # A closed case's log is never written again: a refusal means another run.
                await self._pipe.one("EVAL", _EDIT_LIST, 1, key, _TOMBSTONE, *args)
        return done

    async def sweep_kept(self, kind: KeptKind, before: datetime, *, apply: bool) -> list[str]:
        if kind == "sandbox":
            return await self._sweep_sandbox(before, apply=apply)
        key = _KEPT_LISTS[kind]
        gone: list[tuple[str, bytes]] = []
        for element in await self._pipe.one("LRANGE", key, 0, -1):
            item = _kept_item(kind, element)
            if ri.older(item, before):
                gone.append((item[0], element))
        if apply:
            for chunk in _chunks(gone, BATCH):
                await self._pipe.one("EVAL", _REMOVE_VALUES, 1, key, *(e for _, e in chunk))
        return [name for name, _ in gone]

    async def _sweep_sandbox(self, before: datetime, *, apply: bool) -> list[str]:
        gone: list[tuple[str, bytes]] = []
        for member in await self._pipe.one("ZRANGE", keys.SANDBOX, 0, -1):
            item = ri.sandbox_item(Outbound.model_validate_json(member))
            if ri.older(item, before):
                gone.append((item[0], member))
        if apply:
            for chunk in _chunks(gone, BATCH):
                await self._pipe.one("ZREM", keys.SANDBOX, *(m for _, m in chunk))
        return [name for name, _ in gone]


def _kept_item(kind: KeptKind, element: bytes) -> ri.Item:
    if kind == "unmatched":
        return ri.unmatched_item(InboundSms.model_validate_json(element))
    if kind == "unmatched_handled":
        return ri.handled_item(ri.handled_json(element))
    return ri.receipt_item(element)

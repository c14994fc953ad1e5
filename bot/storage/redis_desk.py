"""The desk on Redis (bot.storage.desk): each step one Lua script on one account's keys.

A case is a hash (``keys.case``) with its history and notes in a list (``keys.case_log``), so
that a script changes the fields it means to and appends entries without decoding JSON (Lua's
cjson cannot tell an empty list from an empty object). The queue's global index
(``keys.DESK_OPEN``) follows the due-timer index's rule (see ``bot.storage.redis``): written
before the commit that opens a case, removed after the one that resolves it, so it may hold
an extra entry (skipped when listed) but never misses an open case.

``COMMIT_CASE`` is the part of the commit script that opens, raises and resolves: spliced
into ``bot.storage.redis``'s commit script, it runs only when the event is committed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.desk.case import PRIORITY_RANK, Case, CaseChange, CaseEntry
from bot.desk.errors import CaseConflict, CaseHeld, CaseNotFound, UnmatchedGone
from bot.storage import keys
from bot.storage.desk import (
    DeskStore,
    Outcome,
    Required,
    assignment_entry,
    expiry_audit,
    handled_record,
    is_due,
)
from bot.storage.desk_events import RedisDeskEvents
from bot.storage.redis_codec import as_text, audit_element, score
from bot.storage.resp import Connection
from bot.transport.inbound import InboundSms

# In the commit script (KEYS 6-10: case, case log, closed case, closed log, cases list;
# ARGV from 7: see case_args). Resolve first, then open or raise.
COMMIT_CASE = b"""
    if ARGV[7] ~= '' and redis.call('HGET', KEYS[6], 'id') == ARGV[7] then
      redis.call('HSET', KEYS[6], 'state', 'resolved', 'resolved_at', ARGV[8],
                 'resolved_by', ARGV[9], 'resolution', ARGV[10])
      redis.call('HINCRBY', KEYS[6], 'version', 1)
      redis.call('RPUSH', KEYS[7], ARGV[11])  -- so the log exists for its RENAME
      redis.call('RENAME', KEYS[6], KEYS[8])
      redis.call('RENAME', KEYS[7], KEYS[9])
      redis.call('RPUSH', KEYS[10], ARGV[7])
    end
    if ARGV[12] ~= '' then
      if redis.call('EXISTS', KEYS[6]) == 1 then
        if tonumber(ARGV[15]) > tonumber(redis.call('HGET', KEYS[6], 'rank')) then
          redis.call('HSET', KEYS[6], 'reason', ARGV[13], 'priority', ARGV[14], 'rank', ARGV[15])
        end
        if tonumber(ARGV[18]) < tonumber(redis.call('HGET', KEYS[6], 'sla_us')) then
          redis.call('HSET', KEYS[6], 'sla_due', ARGV[17], 'sla_us', ARGV[18])
        end
        redis.call('HINCRBY', KEYS[6], 'version', 1)
        redis.call('RPUSH', KEYS[7], ARGV[21])
      else
        redis.call('HSET', KEYS[6], 'id', ARGV[12], 'account_id', ARGV[19], 'reason', ARGV[13],
                   'priority', ARGV[14], 'rank', ARGV[15], 'opened_at', ARGV[16],
                   'sla_due', ARGV[17], 'sla_us', ARGV[18], 'state', 'waiting', 'version', 1)
        redis.call('DEL', KEYS[7])
        redis.call('RPUSH', KEYS[7], ARGV[20])
      end
    end
"""
CASE_ARGS = 15  # ARGV 7..21


def case_keys(account_id: str, change: CaseChange) -> list[str]:
    closed = change.resolve.case_id if change.resolve else "none"
    return [
        keys.case(account_id),
        keys.case_log(account_id),
        keys.closed_case(account_id, closed),
        keys.closed_case_log(account_id, closed),
        keys.cases(account_id),
    ]


def case_args(account_id: str, change: CaseChange) -> list[Any]:
    args: list[Any] = ["", "", "", "", ""]
    if (r := change.resolve) is not None:
        entry = CaseEntry(at=r.at, kind="resolved", by=r.by, detail={"how": r.resolution})
        args = [r.case_id, r.at.isoformat(), r.by, r.resolution, entry.model_dump_json()]
    if change.open is None:
        return args + [""] * 10
    new = change.open.case
    detail = {"reason": new.reason, "priority": new.priority}
    opened = CaseEntry(at=new.opened_at, kind="opened", detail=detail).model_dump_json()
    raised = CaseEntry(at=new.opened_at, kind="raised", detail=detail).model_dump_json()
    return [
        *args,
        new.id,
        new.reason,
        new.priority,
        PRIORITY_RANK[new.priority],
        new.opened_at.isoformat(),
        new.sla_due.isoformat(),
        score(new.sla_due),
        account_id,
        opened,
        raised,
    ]


_READ = "return {1, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}"

# KEYS: case, log   ARGV: case id, agent, at, entry
# {0}: no such open case; {2, holder}: someone else holds it; else {1, fields, log}.
_CLAIM = b"""
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return {0} end
if redis.call('HGET', KEYS[1], 'state') == 'claimed' then
  local holder = redis.call('HGET', KEYS[1], 'holder')
  if holder ~= ARGV[2] then return {2, holder} end
else
  redis.call('HSET', KEYS[1], 'state', 'claimed', 'holder', ARGV[2], 'claimed_at', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('RPUSH', KEYS[2], ARGV[4])
end
""" + _READ.encode()

# KEYS: case, log   ARGV: case id, by, required ('holder' | 'any'), new holder ('' none),
# at, entry.   Replies as _CLAIM; {3}: nobody holds it and the holder was required.
_ASSIGN = b"""
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return {0} end
local holder = redis.call('HGET', KEYS[1], 'holder') or ''
if ARGV[3] == 'holder' and holder ~= ARGV[2] then
  if holder == '' then return {3} end
  return {2, holder}
end
if ARGV[4] == '' then
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'holder', '', 'claimed_at', '')
else
  redis.call('HSET', KEYS[1], 'state', 'claimed', 'holder', ARGV[4], 'claimed_at', ARGV[5])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('RPUSH', KEYS[2], ARGV[6])
""" + _READ.encode()

# KEYS: case, log   ARGV: case id, entry
_NOTE = b"""
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return {0} end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('RPUSH', KEYS[2], ARGV[2])
""" + _READ.encode()

# KEYS: case, log, audit   ARGV: case id, now (µs), at, entry, audit element
_EXPIRE = b"""
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then return 0 end
if (redis.call('HGET', KEYS[1], 'expired_at') or '') ~= '' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'sla_us')) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'expired_at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[5])
return 1
"""

# KEYS: unmatched list, handled list   ARGV: the message's JSON as stored, handled record
_TAKE_UNMATCHED = b"""
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""

# KEYS: index   ARGV: member, score it had when it was found stale
_ZREM_IF_SCORE = b"""
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"""

SCRIPTS = (_CLAIM, _ASSIGN, _NOTE, _EXPIRE, _TAKE_UNMATCHED, _ZREM_IF_SCORE)


def case_from(fields: Sequence[bytes] | dict[bytes, bytes], log: Sequence[bytes]) -> Case:
    raw = fields if isinstance(fields, dict) else dict(zip(fields[::2], fields[1::2], strict=True))
    data: dict[str, Any] = {as_text(k): as_text(v) for k, v in raw.items() if as_text(v)}
    data.pop("rank", None)
    data.pop("sla_us", None)
    entries = [CaseEntry.model_validate_json(e) for e in log]
    data["history"] = [e for e in entries if e.kind != "note"]
    data["notes"] = [e for e in entries if e.kind == "note"]
    return Case.model_validate(data)


class RedisDesk(DeskStore):
    def __init__(self, connection: Connection) -> None:
        self._pipe = connection

        def listen() -> Connection:
            # Longer than one blocking read (BLOCK_MS), so a server that stopped answering is
            # noticed and the read retried, rather than waited on forever.
            return connection.listener(socket_timeout=10.0)

        self.events = RedisDeskEvents(connection, listen)

    async def open_cases(self) -> list[Case]:
        members = await self._pipe.one("ZRANGE", keys.DESK_OPEN, 0, -1)
        ids = [as_text(m) for m in members if keys.usable_account_id(as_text(m))]
        if not ids:
            return []
        commands: list[tuple[Any, ...]] = []
        for a in ids:
            commands += [("HGETALL", keys.case(a)), ("LRANGE", keys.case_log(a), 0, -1)]
        replies = await self._pipe.call(*commands)
        # An index entry without a case is a crash's leftover (see the module docstring).
        return [
            case_from(fields, log)
            for fields, log in zip(replies[::2], replies[1::2], strict=True)
            if fields
        ]

    async def due_cases(self, now: datetime) -> list[Case]:
        # The index's score is the SLA due (or earlier: a crash's leftover), so only due cases
        # are looked at, first by two fields each; the few that need marking are read whole.
        members = await self._pipe.one("ZRANGE", keys.DESK_OPEN, "-inf", score(now), "BYSCORE")
        ids = [as_text(m) for m in members if keys.usable_account_id(as_text(m))]
        if not ids:
            return []
        states = await self._pipe.call(
            *(("HMGET", keys.case(a), "state", "expired_at") for a in ids)
        )
        waiting = [
            a for a, (state, expired) in zip(ids, states, strict=True)
            if state == b"waiting" and not expired
        ]  # fmt: skip
        if not waiting:
            return []
        commands: list[tuple[Any, ...]] = []
        for a in waiting:
            commands += [("HGETALL", keys.case(a)), ("LRANGE", keys.case_log(a), 0, -1)]
        replies = await self._pipe.call(*commands)
        cases = [case_from(f, log) for f, log in zip(replies[::2], replies[1::2], strict=True) if f]
        return [c for c in cases if is_due(c, now)]

    async def case(self, account_id: str) -> Case | None:
        if not keys.usable_account_id(account_id):
            return None
        fields, log = await self._pipe.call(
            ("HGETALL", keys.case(account_id)), ("LRANGE", keys.case_log(account_id), 0, -1)
        )
        return case_from(fields, log) if fields else None

    async def closed_cases(self, account_id: str, limit: int = 20) -> list[Case]:
        if limit <= 0 or not keys.usable_account_id(account_id):
            return []
        ids = [
            as_text(i) for i in await self._pipe.one("LRANGE", keys.cases(account_id), -limit, -1)
        ]
        if not ids:
            return []
        commands: list[tuple[Any, ...]] = []
        for i in ids:
            commands += [
                ("HGETALL", keys.closed_case(account_id, i)),
                ("LRANGE", keys.closed_case_log(account_id, i), 0, -1),
            ]
        replies = await self._pipe.call(*commands)
        return [case_from(f, log) for f, log in zip(replies[::2], replies[1::2], strict=True) if f]

    def _answer(self, reply: list[Any], account_id: str, case_id: str) -> Case:
        if reply[0] == 0:
            raise CaseNotFound(f"account {account_id} has no open case {case_id}")
        if reply[0] == 2:
            raise CaseHeld(case_id, as_text(reply[1]))
        if reply[0] == 3:
            raise CaseConflict(f"case {case_id} is not held by anyone")
        return case_from(reply[1], reply[2])

    def _case_keys(self, account_id: str) -> tuple[str, str]:
        if not keys.usable_account_id(account_id):
            raise CaseNotFound(f"no account {account_id!r}")
        return keys.case(account_id), keys.case_log(account_id)

    async def claim(self, account_id: str, case_id: str, agent: str, at: datetime) -> Case:
        k = self._case_keys(account_id)
        entry = CaseEntry(at=at, kind="claimed", by=agent).model_dump_json()
        reply = await self._pipe.one("EVAL", _CLAIM, 2, *k, case_id, agent, at.isoformat(), entry)
        return self._answer(reply, account_id, case_id)

    async def assign(
        self,
        account_id: str,
        case_id: str,
        *,
        by: str,
        holder: str | None,
        required: Required,
        at: datetime,
    ) -> Case:
        k = self._case_keys(account_id)
        entry = assignment_entry(by, holder, at)
        reply = await self._pipe.one(
            "EVAL",
            _ASSIGN,
            2,
            *k,
            case_id,
            by,
            required,
            holder or "",
            at.isoformat(),
            entry.model_dump_json(),
        )
        return self._answer(reply, account_id, case_id)

    async def add_note(
        self, account_id: str, case_id: str, by: str, text: str, at: datetime
    ) -> Case:
        k = self._case_keys(account_id)
        entry = CaseEntry(at=at, kind="note", by=by, detail={"text": text}).model_dump_json()
        reply = await self._pipe.one("EVAL", _NOTE, 2, *k, case_id, entry)
        return self._answer(reply, account_id, case_id)

    async def expire(self, case: Case, now: datetime, notify: bool) -> bool:
        a = case.account_id
        entry = CaseEntry(at=now, kind="expired", detail={"notify": notify}).model_dump_json()
        audit = audit_element([expiry_audit(case, now, notify)])
        done = await self._pipe.one(
            "EVAL",
            _EXPIRE,
            3,
            keys.case(a),
            keys.case_log(a),
            keys.audit(a),
            case.id,
            score(now),
            now.isoformat(),
            entry,
            audit,
        )
        return bool(done)

    async def repair_index(self) -> int:
        changed = 0
        open_: dict[str, int] = {}
        async for batch in self._pipe.scan(keys.account_pattern(keys.CASE), type_="hash"):
            # One round trip per SCAN page, not per case.
            found = [a for k in batch if (a := keys.account_of(as_text(k), keys.CASE)) is not None]
            if found:
                slas = await self._pipe.call(*(("HGET", keys.case(a), "sla_us") for a in found))
                open_.update((a, int(sla)) for a, sla in zip(found, slas, strict=True) if sla)
        if open_:
            added = await self._pipe.call(
                *(("ZADD", keys.DESK_OPEN, "LT", sla, a) for a, sla in open_.items())
            )
            changed += sum(int(n) for n in added)
        indexed = await self._pipe.one("ZRANGE", keys.DESK_OPEN, 0, -1, "WITHSCORES")
        stale = [
            (a, s)
            for member, s in zip(indexed[::2], indexed[1::2], strict=True)
            if (a := as_text(member)) not in open_
        ]
        checkable = [(a, s) for a, s in stale if keys.usable_account_id(a)]
        exists = (
            await self._pipe.call(*(("EXISTS", keys.case(a)) for a, _ in checkable))
            if checkable
            else []
        )
        gone = [(a, s) for (a, s), e in zip(checkable, exists, strict=True) if not e]
        gone += [(a, s) for a, s in stale if not keys.usable_account_id(a)]
        # Only if the entry is still the stale one: a commit opening a case meanwhile has
        # written its own score first (ZADD LT), and its entry must stay.
        if gone:
            removed = await self._pipe.call(
                *(("EVAL", _ZREM_IF_SCORE, 1, keys.DESK_OPEN, a, s) for a, s in gone)
            )
            changed += sum(int(n) for n in removed)
        return changed

    async def find_unmatched(self, provider: str, msg_id: str) -> InboundSms | None:
        found = await self._find(provider, msg_id)
        return found[1] if found else None

    async def _find(self, provider: str, msg_id: str) -> tuple[bytes, InboundSms] | None:
        for raw in await self._pipe.one("LRANGE", keys.UNMATCHED, 0, -1):
            sms = InboundSms.model_validate_json(raw)
            if sms.provider == provider and sms.msg_id == msg_id:
                return raw, sms
        return None

    async def take_unmatched(
        self, sms: InboundSms, outcome: Outcome, by: str, at: datetime, account: str | None
    ) -> None:
        found = await self._find(sms.provider, sms.msg_id)
        record = json.dumps(handled_record(sms, outcome, by, at, account), ensure_ascii=False)
        taken = found is not None and await self._pipe.one(
            "EVAL", _TAKE_UNMATCHED, 2, keys.UNMATCHED, keys.UNMATCHED_HANDLED, found[0], record
        )
        if not taken:
            raise UnmatchedGone(f"message {sms.provider}:{sms.msg_id} was handled already")

    async def handled_unmatched(self, limit: int = 100) -> list[dict[str, object]]:
        if limit <= 0:
            return []
        raw = await self._pipe.one("LRANGE", keys.UNMATCHED_HANDLED, -limit, -1)
        return [json.loads(r) for r in raw]

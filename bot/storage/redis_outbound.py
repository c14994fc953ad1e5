"""The Redis store's outbound records (bot.outbound.record): transitions, the senders' index,
receipt correlation, unreachable numbers and the shared send-rate buckets.

A transition is one script on the account's slot (record, outbox or deferred list, audit,
queued event, contacted mark). What lives in global keys (the phone's ledger, the senders'
index, the id indexes, the suppression list) follows the store's rule for the due index:
written in the same group *before* the script (each command there is safe to repeat, which a
re-sent group after NOSCRIPT needs), removed *after* it succeeded. A crash in between leaves an
index entry that points at a record with nothing to do (the sender drops it) or a ledger
charge for a send that will not happen (caps over-count, never under-count).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from bot.outbound.record import SETTLED, OutboundRecord, queued
from bot.records import Outbound
from bot.storage import keys
from bot.storage.base import StoreUnavailable, Transition
from bot.storage.redis_codec import (
    PUSH_CAPPED,
    as_text,
    audit_element,
    ledger_commands,
    ledger_release,
    sandbox_commands,
    score,
)
from bot.storage.redis_pack import pack_versioned, unpack
from bot.storage.resp import Connection

# How long the id indexes are kept: receipts come within days; 30 covers late pushes.
INDEX_TTL_S = 30 * 24 * 3600
UNMATCHED_RECEIPTS_MAX = 10_000

# KEYS: outbound, outbox, deferred, audit, meta, queue
# ARGV: message id, expected version ('' = take it from the outbox or the deferred list),
#       record (redis_pack.pack_versioned), deferred message JSON (''), audit element (''),
#       contacted time (''), event JSON ('')
# Outbound JSON starts with its id (pydantic dumps fields in order), so the message is found
# by prefix without decoding every element.
_MOVE = b"""
local mid = ARGV[1]
if ARGV[2] == '' then
  local needle = '{"id":"' .. mid .. '"'
  local found = false
  for _, k in ipairs({KEYS[2], KEYS[3]}) do
    if not found then
      for _, item in ipairs(redis.call('LRANGE', k, 0, -1)) do
        if string.sub(item, 1, #needle) == needle then
          redis.call('LREM', k, 1, item)
          found = true
          break
        end
      end
    end
  end
  if not found then return 0 end
else
  local cur = redis.call('HGET', KEYS[1], mid)
  if not cur then return 0 end
  local version = string.match(cur, '^\2(%d+)%z')
  if not version then
    local ok, rec = pcall(cjson.decode, cur)
    if ok and type(rec) == 'table' then version = tostring(rec['version']) end
  end
  if version ~= ARGV[2] then return 0 end
end
redis.call('HSET', KEYS[1], mid, ARGV[3])
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[4]) end
if ARGV[5] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSETNX', KEYS[5], 'contacted', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('RPUSH', KEYS[6], ARGV[7]) end
return 1
"""

# KEYS: bucket   ARGV: rate (tokens/s), burst, now (s), n   Takes up to n whole tokens.
# Returns {taken, wait}: the wait in seconds until one token is there when none was taken.
_TAKE_TOKENS = b"""
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) else now = at end
local taken = math.max(0, math.min(tonumber(ARGV[4]), math.floor(tokens)))
local wait = 0
if taken == 0 and tokens < 1 then wait = (1 - tokens) / rate end
tokens = tokens - taken
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return {taken, tostring(wait)}
"""

SCRIPTS = (_MOVE, _TAKE_TOKENS)


def records_reads(account_id: str) -> list[tuple[Any, ...]]:
    """The reads of an account's outbound records (decoded by :func:`records_of`)."""
    return [("HVALS", keys.outbound(account_id)), ("LRANGE", keys.outbox(account_id), 0, -1)]


def records_of(past: list[bytes], waiting: list[bytes]) -> list[OutboundRecord]:
    """The records past the outbox, oldest first, then the queued ones."""
    records = [OutboundRecord.model_validate_json(unpack(r)) for r in past]
    records.sort(key=lambda r: (r.message.created_at, r.id))
    return records + [queued(Outbound.model_validate_json(m)) for m in waiting]


class RedisOutbound:
    """Mixed into :class:`bot.storage.redis.RedisStore` (which provides ``_pipe`` and calls
    ``_init_outbound``)."""

    _pipe: Connection

    def _init_outbound(self) -> None:
        # Settled records leaving the senders' index, batched (see _unindex_soon).
        self._settled: set[str] = set()
        self._unindexing: asyncio.Task[None] | None = None

    def _unindex_soon(self, member: str) -> None:
        """Takes a settled record out of the senders' index with the others settled in the
        same turn of the event loop: one ZREM for all, a round trip less per send
        (bench/inbound.py). Losing it is harmless: the entry points at a settled record,
        which the next poll drops. Only settled records: one that may be indexed again (back
        to the gate) must not meet a late removal of its old entry."""
        self._settled.add(member)
        if self._unindexing is None:
            self._unindexing = asyncio.get_running_loop().create_task(self._unindex())

    async def _unindex(self) -> None:
        try:
            while self._settled:
                batch = list(self._settled)
                self._settled.clear()
                await self._pipe.one("ZREM", keys.SEND_QUEUE, *batch)
        except StoreUnavailable:
            self._settled.clear()  # left in the index: the polls drop them
        finally:
            self._unindexing = None

    async def _unindexed(self) -> None:
        """Waits for the removals already asked for (what this process reads of the index
        then agrees with what it wrote)."""
        if self._unindexing is not None:
            await asyncio.wait([self._unindexing])

    async def _move(self, t: Transition) -> bool:
        record = t.record
        a, mid, phone = record.account_id, record.id, record.message.phone
        member = keys.send_member(a, mid)
        before: list[tuple[Any, ...]] = []
        if t.sandbox is not None:
            before += sandbox_commands(t.sandbox)
        if t.charge is not None:
            before += ledger_commands(phone, t.charge)
        if t.due is not None:
            before.append(("SET", keys.message(mid), a, "EX", INDEX_TTL_S))
            before.append(("ZADD", keys.SEND_QUEUE, score(t.due), member))
        if t.opt_out:
            before.append(("SADD", keys.OPT_OUT, phone))
        if t.invalid_number:
            before.append(("SADD", keys.INVALID_NUMBERS, phone))
        if t.provider_index is not None:
            index = keys.provider_id(*t.provider_index)
            before.append(("SET", index, member, "EX", INDEX_TTL_S))
        script_keys = (
            keys.outbound(a),
            keys.outbox(a),
            keys.deferred(a),
            keys.audit(a),
            keys.meta(a),
            keys.queue(a),
        )
        contacted = t.charge.at.isoformat() if t.first_contact and t.charge is not None else ""
        args = (
            mid,
            "" if t.expected is None else str(t.expected),
            # Unset fields left out (read back as None) and compressed (redis_pack), its
            # version in clear: the script compares only that.
            pack_versioned(record.model_dump_json(exclude_none=True), record.version),
            record.message.model_dump_json() if t.defer else "",
            audit_element(t.audit),
            contacted,
            t.event.model_dump_json() if t.event is not None else "",
        )
        *_, moved = await self._pipe.call(
            *before, ("EVAL", _MOVE, len(script_keys), *script_keys, *args)
        )
        if not moved:
            return False
        after: list[tuple[Any, ...]] = []
        if t.undue and record.state in SETTLED:
            self._unindex_soon(member)
        elif t.undue:
            after.append(("ZREM", keys.SEND_QUEUE, member))
        if t.release is not None:
            after.append(ledger_release(phone, t.release))
        if after:
            await self._pipe.call(*after)
        return True

    async def queued(self, account_id: str) -> list[Outbound]:
        raw = await self._pipe.one("LRANGE", keys.outbox(account_id), 0, -1)
        return [Outbound.model_validate_json(m) for m in raw]

    async def outbound(self, account_id: str, message_id: str) -> OutboundRecord | None:
        if not keys.usable_account_id(account_id):
            return None
        raw = await self._pipe.one("HGET", keys.outbound(account_id), message_id)
        return OutboundRecord.model_validate_json(unpack(raw)) if raw is not None else None

    async def outbound_records(self, account_id: str) -> list[OutboundRecord]:
        if not keys.usable_account_id(account_id):
            return []
        return records_of(*await self._pipe.call(*records_reads(account_id)))

    async def due_sends(self, now: datetime, limit: int = 500) -> list[tuple[str, str]]:
        if limit <= 0:
            return []
        await self._unindexed()
        raw = await self._pipe.one(
            "ZRANGE", keys.SEND_QUEUE, "-inf", score(now), "BYSCORE", "LIMIT", 0, limit
        )
        found: list[tuple[str, str]] = []
        for member in raw:
            account_id, _, message_id = as_text(member).partition(" ")
            found.append((account_id, message_id))
        return found

    async def forget_send(self, account_id: str, message_id: str) -> None:
        await self._pipe.one("ZREM", keys.SEND_QUEUE, keys.send_member(account_id, message_id))

    async def message_account(self, message_id: str) -> str | None:
        raw = await self._pipe.one("GET", keys.message(message_id))
        return as_text(raw) if raw is not None else None

    async def locate(self, carrier: str, provider_id: str) -> tuple[str, str] | None:
        raw = await self._pipe.one("GET", keys.provider_id(carrier, provider_id))
        if raw is None:
            return None
        account_id, _, message_id = as_text(raw).partition(" ")
        return account_id, message_id

    async def add_unmatched_receipt(self, receipt_json: str) -> None:
        await self._pipe.one(
            "EVAL", PUSH_CAPPED, 1, keys.UNMATCHED_RECEIPTS, receipt_json, UNMATCHED_RECEIPTS_MAX
        )

    async def list_unmatched_receipts(self, limit: int = 100) -> list[str]:
        if limit <= 0:
            return []
        raw = await self._pipe.one("LRANGE", keys.UNMATCHED_RECEIPTS, -limit, -1)
        return [as_text(r) for r in raw]

    async def _take(self, bucket: str, rate: float, burst: int, n: int, now: datetime) -> list[Any]:
        reply: list[Any] = await self._pipe.one(
            "EVAL",
            _TAKE_TOKENS,
            1,
            keys.rate(bucket),
            repr(rate),
            burst,
            repr(now.timestamp()),
            n,
        )
        return reply

    async def take_tokens(self, bucket: str, rate: float, burst: int, now: datetime) -> float:
        taken, wait = await self._take(bucket, rate, burst, 1, now)
        return 0.0 if taken else float(wait)

    async def take_up_to(self, bucket: str, rate: float, burst: int, n: int, now: datetime) -> int:
        if n <= 0:
            return 0
        taken, _ = await self._take(bucket, rate, burst, n, now)
        return int(taken)

"""Redis store: the production implementation of the store seam (``SMSBOT_REDIS_URL``).

Every key comes from :mod:`bot.storage.keys`. Atomic steps are Lua scripts (no check-then-set
anywhere), and each one only touches keys of one slot: one account's keys (hash tag
``{acc:<id>}``) or one global key.

CPU is what limits a busy service, and with redis-py each call costs about 100 µs of client
CPU whatever Redis does. Two things keep that down (bench/inbound.py):

- every command goes through one :class:`~bot.storage.resp.RedisConnection`: the commands
  that all in-flight events issue in one event-loop iteration leave in one write and their
  replies are parsed by hiredis (a few µs per command);
- a drain is three scripts: take the lock and read the head event, the account, the
  conversation and the deferred messages; commit, extend the lease and read the next event
  (or read the outbox); release and look at the queue again. When the last commit finds
  nothing queued and nothing to send, it deletes the lock itself: two scripts.

Scripts are loaded when the connection is made and sent by SHA1; if Redis forgot them
(SCRIPT FLUSH) they are loaded again and the group is re-sent. So in a group a script comes
last, and whatever precedes it is safe to repeat.

The due-timer index is a global sorted set (bot.storage.redis_due), so it cannot be updated
inside the commit script (another slot). Its crash-safety rule is that the index may be
*earlier* than the truth (the scanner wakes the account too early, and that tick's commit
corrects the index) but never *later* (a timer would be missed):

1. before the commit script, lower the index to ``next_due`` (``ZADD LT``) and read its score;
   sent in the same group as the commit script, so still one round trip (a standalone server
   runs a pipeline in order; on a Redis Cluster the index is sharded so that the account's
   shard is on its own primary, bot.storage.redis_due);
2. after a successful commit, set the exact value (``ZADD``) when the score read in step 1 is
   earlier than ``next_due``, or remove the entry (``ZREM``) when ``next_due`` is None and
   there was one. If this step fails, commit still returns True (it happened) and logs a
   warning.

A crash between the two leaves the index earlier than (or equal to) the truth. A commit that
fails (its event is no longer at the head) may likewise leave the index lowered; it never
raises nor removes it.

Every connection or timeout error becomes :class:`StoreUnavailable`, so the web layer answers
503 and providers retry. No command is ever retried unless its reply proves it did not run
(NOSCRIPT; on a cluster also MOVED, ASK, TRYAGAIN): a retry of a command whose reply was lost
could enqueue twice or pop two messages; the connection is made again on the next command,
so the same store works again once Redis is back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.desk.case import CaseChange
from bot.memo import Memo
from bot.records import AccountRecord, AuditEntry, Outbound, QueuedEvent, SendRecord
from bot.storage import keys
from bot.storage.base import (
    AccountLock,
    GateFacts,
    Loaded,
    Store,
    StoreUnavailable,
)
from bot.storage.connect import connection_for
from bot.storage.redis_campaigns import SCRIPTS as CAMPAIGN_SCRIPTS
from bot.storage.redis_campaigns import RedisCampaigns
from bot.storage.redis_codec import (
    PUSH_CAPPED,
    account_record,
    as_text,
    audit_element,
    ledger_commands,
    ledger_records,
    newest_entries,
    sandbox_commands,
    score,
)
from bot.storage.redis_desk import CASE_ARGS, COMMIT_CASE, RedisDesk, case_args, case_keys
from bot.storage.redis_desk import SCRIPTS as DESK_SCRIPTS
from bot.storage.redis_due import RedisDue
from bot.storage.redis_lock import DELETE_IF_EQUAL, RedisLock
from bot.storage.redis_lock import SCRIPTS as LOCK_SCRIPTS
from bot.storage.redis_outbound import SCRIPTS as OUTBOUND_SCRIPTS
from bot.storage.redis_outbound import RedisOutbound
from bot.storage.redis_pack import pack, unpack_text
from bot.storage.redis_reports import RedisReports
from bot.storage.redis_retention import SCRIPTS as RETENTION_SCRIPTS
from bot.storage.redis_retention import RedisRetention
from bot.storage.resp import Connection
from bot.storage.resp_cluster import ClusterConnection
from bot.transport.inbound import InboundSms

log = logging.getLogger(__name__)

# How long a de-duplication claim (provider message id, payment reference) is remembered.
# Providers retry for hours at most; 30 days also covers a payment file re-sent weeks later.
DEDUP_TTL_S = 30 * 24 * 3600
QUEUED_MEMO = 10_000  # events remembered between enqueue and drain (see bot.memo)

# --- Lua scripts: each touches the keys of one slot only -------------------------------------

# KEYS: queue, seen   ARGV: event JSON, claim TTL (s)
# The claim's value is never read: '1' costs 48 bytes less than an event id, for each of the
# 30 days a claim is kept (every reply and campaign start leaves one; bench/campaign.py).
_ENQUEUE_DEDUP = b"""
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""

# KEYS: queue, conversation, audit, outbox, lock[, the case keys of redis_desk.case_keys]
# ARGV: event id, conversation, the event's audit entries (one JSON array; '' for none), lock
#       token ('' for none), lease (ms), release if idle ('1' or '0')[, the case arguments of
#       redis_desk.case_args], outbound...
# Returns {committed} without a token, else {committed, held[, next event | false, outbox
# [, released]]}: released when asked to and there is neither a next event nor an outbox, in
# which case the lock was deleted (the queue is empty at that instant: nobody is left waiting).
_COMMIT_TEMPLATE = b"""
local committed = 0
local head = redis.call('LINDEX', KEYS[1], 0)
if head then
  local ok, event = pcall(cjson.decode, head)
  if ok and type(event) == 'table' and event['id'] == ARGV[1] then
    committed = 1
    redis.call('LPOP', KEYS[1])
    if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
    if ARGV[3] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[3]) end
    for i = FIRST, #ARGV, 500 do
      redis.call('RPUSH', KEYS[4], unpack(ARGV, i, math.min(i + 499, #ARGV)))
    end
--CASE
  end
end
if ARGV[4] == '' then return {committed} end
if redis.call('GET', KEYS[5]) ~= ARGV[4] then return {committed, 0} end
redis.call('PEXPIRE', KEYS[5], ARGV[5])
local nxt = redis.call('LINDEX', KEYS[1], 0)
if nxt then return {committed, 1, nxt} end
local outbox = redis.call('LRANGE', KEYS[4], 0, -1)
if ARGV[6] == '1' and #outbox == 0 then
  redis.call('DEL', KEYS[5])
  return {committed, 1, false, outbox, 1}
end
return {committed, 1, false, outbox}
"""

_COMMIT = _COMMIT_TEMPLATE.replace(b"FIRST", b"7").replace(b"--CASE\n", b"")
# The commit of an event that opens, raises or resolves a case (bot.desk): the same script with
# the case's part (redis_desk.COMMIT_CASE) run only when the event is committed.
_COMMIT_CASE = _COMMIT_TEMPLATE.replace(b"FIRST", str(7 + CASE_ARGS).encode()).replace(
    b"--CASE\n", COMMIT_CASE
)

# KEYS: seen, list   ARGV: InboundSms JSON, claim TTL (s)
_ADD_UNMATCHED = b"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

_SCRIPTS = (
    _ENQUEUE_DEDUP,
    _COMMIT,
    _COMMIT_CASE,
    _ADD_UNMATCHED,
    PUSH_CAPPED,
    *LOCK_SCRIPTS,
    *OUTBOUND_SCRIPTS,
    *DESK_SCRIPTS,
    *CAMPAIGN_SCRIPTS,
    *RETENTION_SCRIPTS,
)


class RedisStore(RedisOutbound, RedisDue, RedisRetention, RedisReports, Store):
    """The store on one Redis server, a Redis Cluster or a Sentinel-watched primary."""

    def __init__(self, connection: Connection, *, dedup_ttl_s: int = DEDUP_TTL_S) -> None:
        self._pipe = connection
        self._dedup_ttl_s = dedup_ttl_s
        self._where = connection.where
        # Events this process queued, by their JSON: the drain that reads one back (usually
        # here, moments later) needs no parsing. See bot.memo.
        self._queued: Memo[bytes, QueuedEvent] = Memo(QUEUED_MEMO)
        self._init_outbound()
        self.desk = RedisDesk(connection)
        self.campaigns = RedisCampaigns(connection)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        dedup_ttl_s: int = DEDUP_TTL_S,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 2.0,
    ) -> RedisStore:
        """A store on ``redis://[[user]:password@]host[:port][/db]`` (or rediss://, unix://,
        a cluster's ``redis+cluster://host:port,host:port``, Sentinel's
        ``redis+sentinel://host:port/<name>``: bot.storage.connect).

        Connects lazily: a bad URL host only shows on first use (``ping``).
        """
        connection = connection_for(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            scripts=_SCRIPTS,
        )
        return cls(connection, dedup_ttl_s=dedup_ttl_s)

    # --- lifecycle -----------------------------------------------------------------------

    async def ping(self) -> None:
        """Redis can serve (readiness). On a cluster, every primary: one down leaves part of
        the keyspace unserved while the others answer."""
        try:
            await self._ping_once()
        except StoreUnavailable:
            # After a Redis restart the pool still holds dead connections; a PING is safe to
            # repeat, so one more try on a fresh connection tells the truth.
            await self._ping_once()

    async def _ping_once(self) -> None:
        pipe = self._pipe
        if isinstance(pipe, ClusterConnection):
            await pipe.ping_primaries()
        else:
            await pipe.one("PING")

    async def close(self) -> None:
        await self._unindexed()
        await self._pipe.close()

    # --- accounts ------------------------------------------------------------------------

    async def upsert_account(self, account: AccountRecord) -> bool:
        key = keys.account(account.id)
        old_raw = await self._pipe.one("GET", key)
        old = AccountRecord.model_validate_json(old_raw) if old_raw is not None else None

        # Phone index first, the account record last: a crash in between leaves at worst an
        # extra entry for the new phone or a missing one for the old phone (both harmless:
        # they point at this account or nowhere), and repeating the upsert repairs either.
        # The record is written with SET GET so that, of two concurrent creations, exactly
        # one is told the account is new (and starts its conversation).
        new_phone = keys.phone(account.phone)
        data = account.model_dump_json()
        if old is not None and old.phone != account.phone:
            # Only if the old number still points here: it may belong to another account by
            # now (recycled numbers).
            old_phone = keys.phone(old.phone)
            await self._pipe.call(
                ("SET", new_phone, account.id),
                ("EVAL", DELETE_IF_EQUAL, 1, old_phone, account.id),
            )
            previous = await self._pipe.one("SET", key, data, "GET")
        else:
            _, previous = await self._pipe.call(
                ("SET", new_phone, account.id), ("SET", key, data, "GET")
            )
        return previous is None

    async def load(self, account_id: str) -> Loaded:
        if not keys.usable_account_id(account_id):
            return Loaded(None, None, [])
        account, conversation, deferred = await self._pipe.call(
            ("GET", keys.account(account_id)),
            ("GET", keys.conversation(account_id)),
            ("LRANGE", keys.deferred(account_id), 0, -1),
        )
        return Loaded(
            account_record(account) if account is not None else None,
            unpack_text(conversation) if conversation is not None else None,
            [Outbound.model_validate_json(m) for m in deferred],
        )

    async def gate_facts(self, account_id: str, phone: str, since: datetime) -> GateFacts:
        opted_out, history, (preferences, contacted), invalid = await self._pipe.call(
            ("SISMEMBER", keys.OPT_OUT, phone),
            ("ZRANGE", keys.sends(phone), score(since), "+inf", "BYSCORE", "WITHSCORES"),
            ("HMGET", keys.meta(account_id), "preferences", "contacted"),
            ("SISMEMBER", keys.INVALID_NUMBERS, phone),
        )
        return GateFacts(
            opted_out=bool(opted_out),
            history=ledger_records(history),
            preferences=as_text(preferences) if preferences is not None else None,
            contacted=contacted is not None,
            invalid_number=bool(invalid),
        )

    async def get_account(self, account_id: str) -> AccountRecord | None:
        if not keys.usable_account_id(account_id):
            return None  # no AccountRecord has such an id (e.g. from a URL): unknown, not 500
        raw = await self._pipe.one("GET", keys.account(account_id))
        return account_record(raw) if raw is not None else None

    async def find_account(self, phone: str) -> str | None:
        raw = await self._pipe.one("GET", keys.phone(phone))
        return as_text(raw) if raw is not None else None

    # --- per-account event queue ---------------------------------------------------------

    def _event(self, raw: bytes | None) -> QueuedEvent | None:
        if raw is None:
            return None
        return self._queued.pop(raw) or QueuedEvent.model_validate_json(raw)

    def _remember(self, event: QueuedEvent) -> bytes:
        """The event's JSON, remembered until a drain of this process reads it back."""
        data = event.model_dump_json().encode()
        self._queued.put(data, event)
        return data

    async def enqueue(self, account_id: str, event: QueuedEvent, dedup: str | None = None) -> bool:
        data = self._remember(event)
        if dedup is None:
            await self._pipe.one("RPUSH", keys.queue(account_id), data)
            return True
        claimed = await self._pipe.one(
            "EVAL",
            _ENQUEUE_DEDUP,
            2,
            keys.queue(account_id),
            keys.seen(account_id, dedup),
            data,
            self._dedup_ttl_s,
        )
        if not claimed:
            self._queued.pop(data)  # a provider's retry: the first copy is the one queued
        return bool(claimed)

    async def head(self, account_id: str) -> QueuedEvent | None:
        return self._event(await self._pipe.one("LINDEX", keys.queue(account_id), 0))

    async def _scan(self, pattern: str, type_: str | None = None) -> list[str]:
        """Every key matching ``pattern`` (SCAN: slow on a big keyspace, never blocks Redis;
        on a cluster, every primary in turn)."""
        return [as_text(k) async for batch in self._pipe.scan(pattern, type_=type_) for k in batch]

    async def pending_accounts(self) -> list[str]:
        # Recovery only. Empty lists do not exist in Redis, so every list found has something.
        found: set[str] = set()
        for suffix in (keys.QUEUE, keys.OUTBOX):
            for key in await self._scan(keys.account_pattern(suffix), "list"):
                account_id = keys.account_of(key, suffix)
                if account_id is not None:
                    found.add(account_id)
        return sorted(found)

    async def get_conversation(self, account_id: str) -> str | None:
        raw = await self._pipe.one("GET", keys.conversation(account_id))
        return unpack_text(raw) if raw is not None else None

    async def commit(
        self,
        account_id: str,
        event_id: str,
        conversation: str | None,
        audit: Sequence[AuditEntry],
        outbox: Sequence[Outbound],
        next_due: datetime | None,
        *,
        case: CaseChange | None = None,
    ) -> bool:
        outbox_json = [o.model_dump_json() for o in outbox]
        reply = await self._commit(
            account_id, event_id, conversation, audit, outbox_json, next_due, case=case
        )
        return bool(reply[0])

    async def _commit(
        self,
        account_id: str,
        event_id: str,
        conversation: str | None,
        audit: Sequence[AuditEntry],
        outbox: Sequence[str | bytes],
        next_due: datetime | None,
        lock: tuple[str, str, int] | None = None,
        release_if_idle: bool = False,
        case: CaseChange | None = None,
    ) -> list[Any]:
        """The commit script with the due-index steps around it (and the case queue's index
        steps, which follow the same rule); the script's reply."""
        lock_key, token, ttl_ms = lock or (keys.lock(account_id), "", 0)
        script_keys: tuple[str, ...] = (
            keys.queue(account_id),
            keys.conversation(account_id),
            keys.audit(account_id),
            keys.outbox(account_id),
            lock_key,
        )
        idle = "1" if release_if_idle else "0"
        packed = pack(conversation) if conversation else ""
        args: list[Any] = [event_id, packed, audit_element(audit), token, ttl_ms, idle]
        script = _COMMIT
        if case:
            script = _COMMIT_CASE
            script_keys += tuple(case_keys(account_id, case))
            args += case_args(account_id, case)
        args += outbox
        due = score(next_due) if next_due is not None else None
        due_key = self._due_key(account_id)

        # Step 1 (see the module docstring): one group, run in this order by Redis.
        commands: list[tuple[Any, ...]] = []
        if case and case.open is not None:
            # The queue's index before the case exists: never missing an open case.
            commands.append(
                ("ZADD", keys.DESK_OPEN, "LT", score(case.open.case.sla_due), account_id)
            )
        if due is not None:
            commands.append(("ZADD", due_key, "LT", due, account_id))
        commands.append(("ZSCORE", due_key, account_id))
        commands.append(("EVAL", script, len(script_keys), *script_keys, *args))
        *_, indexed, reply = await self._pipe.call(*commands)
        if not reply[0]:
            return list(reply)
        # Step 2: only when the index is not already exact. The commit has happened: if this
        # step fails the index stays earlier than the truth (safe, corrected by the next
        # commit), so report the commit as done rather than as a store failure.
        try:
            if due is not None:
                if indexed is None or int(float(indexed)) != due:
                    await self._raise_due(account_id, ("ZADD", due_key, due, account_id), next_due)
            elif indexed is not None:
                await self._raise_due(account_id, ("ZREM", due_key, account_id), None)
            # Only this lock's holder opens cases, so "no case now" stays true until our next
            # commit: the entry can go.
            if (
                case
                and case.resolve is not None
                and case.open is None
                and not await self._pipe.one("EXISTS", keys.case(account_id))
            ):
                await self._pipe.one("ZREM", keys.DESK_OPEN, account_id)
        except StoreUnavailable as exc:
            log.warning(
                "account %s committed; its due-timer index stays early until its next commit "
                "(Redis at %s: %s)",
                account_id,
                self._where,
                exc,
            )
        return list(reply)

    def lock(self, account_id: str, ttl_ms: int = 30_000) -> AccountLock:
        return RedisLock(self, account_id, ttl_ms)

    # --- accounts (reports) and per-account facts ---------------------------------------

    async def account_ids(self) -> list[str]:
        ids: list[str] = []
        for key in await self._scan(keys.account_pattern(keys.ACCOUNT)):
            account_id = keys.account_of(key, keys.ACCOUNT)
            if account_id is not None:
                ids.append(account_id)
        return sorted(ids)

    async def get_meta(self, account_id: str, key: str) -> str | None:
        raw = await self._pipe.one("HGET", keys.meta(account_id), key)
        return as_text(raw) if raw is not None else None

    async def set_meta(self, account_id: str, key: str, value: str) -> None:
        await self._pipe.one("HSET", keys.meta(account_id), key, value)

    # --- deferred messages ---------------------------------------------------------------

    async def deferred(self, account_id: str) -> list[Outbound]:
        raw = await self._pipe.one("LRANGE", keys.deferred(account_id), 0, -1)
        return [Outbound.model_validate_json(r) for r in raw]

    # --- per-phone ledger of sends -------------------------------------------------------

    async def record_send(self, phone: str, record: SendRecord) -> None:
        await self._pipe.call(*ledger_commands(phone, record))

    async def send_history(self, phone: str, since: datetime) -> list[SendRecord]:
        raw = await self._pipe.one(
            "ZRANGE", keys.sends(phone), score(since), "+inf", "BYSCORE", "WITHSCORES"
        )
        return ledger_records(raw)

    # --- suppression list ----------------------------------------------------------------

    async def add_opt_out(self, phone: str) -> None:
        await self._pipe.one("SADD", keys.OPT_OUT, phone)

    async def is_opted_out(self, phone: str) -> bool:
        return bool(await self._pipe.one("SISMEMBER", keys.OPT_OUT, phone))

    async def remove_opt_out(self, phone: str) -> None:
        await self._pipe.one("SREM", keys.OPT_OUT, phone)

    # --- audit ---------------------------------------------------------------------------

    async def append_audit(self, account_id: str, entries: Sequence[AuditEntry]) -> None:
        if entries:
            await self._pipe.one("RPUSH", keys.audit(account_id), audit_element(entries))

    async def read_audit(self, account_id: str, limit: int = 1000) -> list[AuditEntry]:
        if limit <= 0:
            return []
        # Every element holds at least one entry: the last `limit` elements hold the last
        # `limit` entries (or all there are).
        raw = await self._pipe.one("LRANGE", keys.audit(account_id), -limit, -1)
        return newest_entries(raw, limit)

    # --- messages from unknown numbers ---------------------------------------------------

    async def add_unmatched(self, sms: InboundSms) -> bool:
        added = await self._pipe.one(
            "EVAL",
            _ADD_UNMATCHED,
            2,
            keys.unmatched_seen(sms.provider, sms.msg_id),
            keys.UNMATCHED,
            sms.model_dump_json(),
            self._dedup_ttl_s,
        )
        return bool(added)

    async def list_unmatched(self, limit: int = 100) -> list[InboundSms]:
        if limit <= 0:
            return []
        raw = await self._pipe.one("LRANGE", keys.UNMATCHED, -limit, -1)
        return [InboundSms.model_validate_json(r) for r in raw]

    # --- sandbox provider ----------------------------------------------------------------

    async def record_sandbox(self, message: Outbound) -> None:
        await self._pipe.call(*sandbox_commands(message))

    async def list_sandbox(self, limit: int = 200) -> list[Outbound]:
        if limit <= 0:
            return []
        raw = await self._pipe.one("ZRANGE", keys.SANDBOX, -limit, -1)
        return [Outbound.model_validate_json(r) for r in raw]

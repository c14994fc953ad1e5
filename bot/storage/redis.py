"""Redis store: the production implementation of the store seam (``SMSBOT_REDIS_URL``).

Every key comes from :mod:`bot.storage.keys`. Atomic steps are Lua scripts registered once
(no check-then-set anywhere), and each one only touches keys of one slot: one account's keys
(hash tag ``{acc:<id>}``) or one global key. Round trips are counted: each redis-py call costs
roughly 100 µs of client CPU, so the hot path (enqueue, head, get_conversation, commit, lock)
is one call each, and commit is one call unless the due-timer index needs a second (below).

The due-timer index is a global sorted set, so it cannot be updated inside the commit script
(another slot). Its crash-safety rule is that the index may be *earlier* than the truth (the
scanner wakes the account too early, and that tick's commit corrects the index) but never
*later* (a timer would be missed):

1. before the commit script, lower the index to ``next_due`` (``ZADD LT``) and read its score;
   sent in the same pipeline as the commit script, so still one round trip (a standalone
   server runs a pipeline in order; a Redis Cluster client would send these to other nodes in
   parallel, so there step 1 must be a round trip of its own);
2. after a successful commit, set the exact value (``ZADD``) when the score read in step 1 is
   earlier than ``next_due``, or remove the entry (``ZREM``) when ``next_due`` is None and
   there was one. Nothing else needs a second round trip. If this step fails, commit still
   returns True (it happened) and logs a warning.

A crash between the two leaves the index earlier than (or equal to) the truth. A commit that
fails (its event is no longer at the head) may likewise leave the index lowered; it never
raises nor removes it.

Every connection or timeout error of redis-py becomes :class:`StoreUnavailable`, so the web
layer answers 503 and providers retry. redis-py never retries a command here (a retry of a
command whose reply was lost could enqueue twice or pop two messages); the pool checks each
connection before reuse and reconnects, so the same store works again once Redis is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Callable, Coroutine, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)
from redis.retry import Retry

from bot.records import AccountRecord, AuditEntry, Outbound, QueuedEvent, SendRecord
from bot.storage import keys
from bot.storage.base import AccountLock, GateFacts, Loaded, Store, StoreUnavailable
from bot.transport.inbound import InboundSms

log = logging.getLogger(__name__)

# How long a de-duplication claim (provider message id, payment reference) is remembered.
# Providers retry for hours at most; 30 days also covers a payment file re-sent weeks later.
DEDUP_TTL_S = 30 * 24 * 3600
# The sandbox provider keeps the latest messages only (as the memory store does).
SANDBOX_MAX = 10_000

# Errors that mean "Redis cannot be used right now" (retry later), not "we have a bug".
# ConnectionError covers refused/reset connections, auth failures and BusyLoadingError
# (Redis still loading its data set); ReadOnlyError is a replica after a fail-over;
# OutOfMemoryError is Redis refusing writes at maxmemory.
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OutOfMemoryError)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The frequency caps look back 7 days; the ledger keeps 8.
_LEDGER_KEEP_US = 8 * 24 * 3600 * 1_000_000

# --- Lua scripts: each touches the keys of one slot only -------------------------------------

# KEYS: queue, seen   ARGV: event JSON, event id, claim TTL (s)
_ENQUEUE_DEDUP = """
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""

# KEYS: queue, conversation, audit, outbox
# ARGV: event id, conversation, number of audit entries, audit entries..., outbound...
_COMMIT = """
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return 0 end
local ok, event = pcall(cjson.decode, head)
if not ok or type(event) ~= 'table' or event['id'] ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
local function push(key, first, last)
  for i = first, last, 500 do
    redis.call('RPUSH', key, unpack(ARGV, i, math.min(i + 499, last)))
  end
end
local n = tonumber(ARGV[3])
push(KEYS[3], 4, 3 + n)
push(KEYS[4], 4 + n, #ARGV)
return 1
"""

# KEYS: key   ARGV: expected value
_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lock   ARGV: token, ttl (ms)
_REFRESH_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: seen, list   ARGV: InboundSms JSON, claim TTL (s)
_ADD_UNMATCHED = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

# KEYS: list   ARGV: message JSON, maximum length
_PUSH_CAPPED = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return 1
"""


class _Slots:
    """At most ``size`` Redis operations of one store in flight; the others wait their turn.

    Each store operation uses one pooled connection at a time, so with the pool sized the
    same it never runs dry. redis-py's pool raises MaxConnectionsError at once when it does,
    which under a burst (hundreds of accounts draining at once) meant spurious 503s and
    aborted drains that kept their account locks until the TTL. redis-py's
    BlockingConnectionPool waits too, but costs every call ~10 µs (a condition variable and
    a timeout even when connections are free); this costs a counter when one is free. A wait
    longer than ``timeout`` (the socket timeout) is StoreUnavailable.
    """

    def __init__(self, size: int, timeout: float | None) -> None:
        self._free = asyncio.Semaphore(size)
        self._timeout = timeout

    async def acquire(self, where: str, operation: str) -> None:
        if not self._free.locked():
            await self._free.acquire()  # a slot is free: returns without suspending
            return
        try:
            await asyncio.wait_for(self._free.acquire(), self._timeout)
        except TimeoutError:
            raise StoreUnavailable(
                f"Redis at {where} is unavailable ({operation}): every connection stayed busy "
                f"for {self._timeout} s"
            ) from None

    def release(self) -> None:
        self._free.release()


# Set while a task runs a store operation: an operation calling another one does not take a
# second slot (it could wait forever for slots held by operations waiting like itself).
_IN_OPERATION: ContextVar[bool] = ContextVar("smsbot_redis_operation", default=False)


class _Located(Protocol):
    _where: str
    _slots: _Slots


_S = TypeVar("_S", bound=_Located)
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _translated(
    fn: Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
    """Takes a connection slot; turns redis-py's connection and timeout errors into
    StoreUnavailable."""

    @functools.wraps(fn)
    async def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        nested = _IN_OPERATION.get()
        if not nested:
            await self._slots.acquire(self._where, fn.__name__)
        token = _IN_OPERATION.set(True)
        try:
            return await fn(self, *args, **kwargs)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"Redis at {self._where} is unavailable ({fn.__name__}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            _IN_OPERATION.reset(token)
            if not nested:
                self._slots.release()

    return wrapper


def _score(at: datetime) -> int:
    """Microseconds since the epoch: exact in a sorted-set score (a double) until year 2255."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"timer times must be timezone-aware, got {at!r}")
    return (at - _EPOCH) // _MICROSECOND


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _RedisLock(AccountLock):
    """SET NX PX with a random owner token; refresh and release compare the token first."""

    def __init__(self, store: RedisStore, account_id: str, ttl_ms: int) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"lock ttl_ms must be positive, got {ttl_ms}")
        self._store = store
        self._where = store._where
        self._slots = store._slots
        self._key = keys.lock(account_id)
        self._ttl_ms = ttl_ms
        # One token per lock object: a second acquire() by the same owner must not forget
        # the token of the lease it already holds.
        self._token = secrets.token_hex(16)

    @_translated
    async def acquire(self) -> bool:
        return bool(await self._store._redis.set(self._key, self._token, nx=True, px=self._ttl_ms))

    @_translated
    async def refresh(self) -> bool:
        return bool(
            await self._store._refresh_if_equal(keys=[self._key], args=[self._token, self._ttl_ms])
        )

    @_translated
    async def release(self) -> None:
        await self._store._delete_if_equal(keys=[self._key], args=[self._token])


class RedisStore(Store):
    """The store on one Redis server (standalone; keys are ready for Redis Cluster)."""

    def __init__(self, client: aioredis.Redis, *, dedup_ttl_s: int = DEDUP_TTL_S) -> None:
        self._redis = client
        self._dedup_ttl_s = dedup_ttl_s
        kw = client.connection_pool.connection_kwargs
        self._where = str(kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}")
        self._where += f"/{kw.get('db', 0)}"
        self._slots = _Slots(client.connection_pool.max_connections, kw.get("socket_timeout"))
        # register_script only computes the SHA; the script is loaded on first use and again
        # whenever Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
        self._enqueue_dedup = client.register_script(_ENQUEUE_DEDUP)
        self._commit = client.register_script(_COMMIT)
        self._delete_if_equal = client.register_script(_DELETE_IF_EQUAL)
        self._refresh_if_equal = client.register_script(_REFRESH_IF_EQUAL)
        self._add_unmatched = client.register_script(_ADD_UNMATCHED)
        self._push_capped = client.register_script(_PUSH_CAPPED)
        self._scripts = (
            self._enqueue_dedup,
            self._commit,
            self._delete_if_equal,
            self._refresh_if_equal,
            self._add_unmatched,
            self._push_capped,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        dedup_ttl_s: int = DEDUP_TTL_S,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 2.0,
        max_connections: int = 100,
        **kwargs: Any,
    ) -> RedisStore:
        """A store on ``redis://[[user]:password@]host[:port][/db]`` (or rediss://, unix://).

        Connects lazily: a bad URL host only shows on first use (``ping``). At most
        ``max_connections`` operations run at once; the others wait (see ``_Slots``).
        """
        client = aioredis.Redis.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retry=Retry(NoBackoff(), 0),  # never re-send a command (see the module docstring)
            **kwargs,
        )
        return cls(client, dedup_ttl_s=dedup_ttl_s)

    # --- helpers -------------------------------------------------------------------------

    async def _pipeline(self, build: Callable[[Pipeline], object]) -> list[Any]:
        """One round trip of several commands (not a transaction), in order on one connection.

        Scripts are sent by SHA; if Redis forgot them (restart, SCRIPT FLUSH) they are loaded
        and the whole pipeline is sent again. So ``build`` must put its scripts last (nothing
        after a failed script has run) and everything before them must be safe to repeat.
        """
        for attempt in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                build(pipe)
                results: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                for script in self._scripts:
                    await self._redis.script_load(script.script)
                continue
            for r in results:
                if isinstance(r, Exception):
                    raise r
            return results
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _evalsha(
        pipe: Pipeline, script: AsyncScript, keys_: Sequence[str], args: Sequence[Any]
    ) -> None:
        pipe.evalsha(script.sha, len(keys_), *keys_, *args)

    # --- lifecycle -----------------------------------------------------------------------

    @_translated
    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except _UNAVAILABLE:
            # After a Redis restart the pool still holds dead connections; a PING is safe to
            # repeat, so one more try on a fresh connection tells the truth.
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()  # from_url's client owns its pool and closes it too

    # --- accounts ------------------------------------------------------------------------

    @_translated
    async def upsert_account(self, account: AccountRecord) -> bool:
        key = keys.account(account.id)
        old_raw = await self._redis.get(key)
        old = AccountRecord.model_validate_json(old_raw) if old_raw is not None else None

        # Phone index first, the account record last: a crash in between leaves at worst an
        # extra entry for the new phone or a missing one for the old phone (both harmless:
        # they point at this account or nowhere), and repeating the upsert repairs either.
        # The record is written with SET GET so that, of two concurrent creations, exactly
        # one is told the account is new (and starts its conversation).
        new_phone = keys.phone(account.phone)
        if old is not None and old.phone != account.phone:
            # Only if the old number still points here: it may belong to another account by
            # now (recycled numbers).
            old_phone = keys.phone(old.phone)
            await self._pipeline(
                lambda pipe: (
                    pipe.set(new_phone, account.id),
                    self._evalsha(pipe, self._delete_if_equal, [old_phone], [account.id]),
                )
            )
            previous = await self._redis.set(key, account.model_dump_json(), get=True)
        else:
            _, previous = await self._pipeline(
                lambda pipe: (
                    pipe.set(new_phone, account.id),
                    pipe.set(key, account.model_dump_json(), get=True),
                )
            )
        return previous is None

    @_translated
    async def load(self, account_id: str) -> Loaded:
        if not keys.usable_account_id(account_id):
            return Loaded(None, None, [])

        def build(pipe: Pipeline) -> None:
            pipe.get(keys.account(account_id))
            pipe.get(keys.conversation(account_id))
            pipe.lrange(keys.deferred(account_id), 0, -1)

        account, conversation, deferred = await self._pipeline(build)
        return Loaded(
            AccountRecord.model_validate_json(account) if account is not None else None,
            _text(conversation) if conversation is not None else None,
            [Outbound.model_validate_json(m) for m in deferred],
        )

    @_translated
    async def gate_facts(self, account_id: str, phone: str, since: datetime) -> GateFacts:
        def build(pipe: Pipeline) -> None:
            pipe.sismember(keys.OPT_OUT, phone)
            pipe.zrange(keys.sends(phone), _score(since), "+inf", byscore=True)
            pipe.hmget(keys.meta(account_id), ["preferences", "contacted"])

        opted_out, history, (preferences, contacted) = await self._pipeline(build)
        return GateFacts(
            opted_out=bool(opted_out),
            history=[SendRecord.model_validate_json(r) for r in history],
            preferences=_text(preferences) if preferences is not None else None,
            contacted=contacted is not None,
        )

    @_translated
    async def get_account(self, account_id: str) -> AccountRecord | None:
        if not keys.usable_account_id(account_id):
            return None  # no AccountRecord has such an id (e.g. from a URL): unknown, not 500
        raw = await self._redis.get(keys.account(account_id))
        return AccountRecord.model_validate_json(raw) if raw is not None else None

    @_translated
    async def find_account(self, phone: str) -> str | None:
        raw = await self._redis.get(keys.phone(phone))
        return _text(raw) if raw is not None else None

    # --- per-account event queue ---------------------------------------------------------

    @_translated
    async def enqueue(self, account_id: str, event: QueuedEvent, dedup: str | None = None) -> bool:
        data = event.model_dump_json()
        if dedup is None:
            await self._redis.rpush(keys.queue(account_id), data)
            return True
        claimed = await self._enqueue_dedup(
            keys=[keys.queue(account_id), keys.seen(account_id, dedup)],
            args=[data, event.id, self._dedup_ttl_s],
        )
        return bool(claimed)

    @_translated
    async def head(self, account_id: str) -> QueuedEvent | None:
        raw = await self._redis.lindex(keys.queue(account_id), 0)
        return QueuedEvent.model_validate_json(raw) if raw is not None else None

    @_translated
    async def pending_accounts(self) -> list[str]:
        # Recovery only: SCAN is slow on a big keyspace but never blocks Redis. Empty lists do
        # not exist in Redis, so every list found has something in it.
        found: set[str] = set()
        for suffix in (keys.QUEUE, keys.OUTBOX):
            async for raw in self._redis.scan_iter(
                match=keys.account_pattern(suffix), count=1000, _type="list"
            ):
                account_id = keys.account_of(_text(raw), suffix)
                if account_id is not None:
                    found.add(account_id)
        return sorted(found)

    @_translated
    async def get_conversation(self, account_id: str) -> str | None:
        raw = await self._redis.get(keys.conversation(account_id))
        return _text(raw) if raw is not None else None

    @_translated
    async def commit(
        self,
        account_id: str,
        event_id: str,
        conversation: str | None,
        audit: Sequence[AuditEntry],
        outbox: Sequence[Outbound],
        next_due: datetime | None,
    ) -> bool:
        commit_keys = [
            keys.queue(account_id),
            keys.conversation(account_id),
            keys.audit(account_id),
            keys.outbox(account_id),
        ]
        commit_args: list[Any] = [event_id, conversation or "", len(audit)]
        commit_args += [a.model_dump_json() for a in audit]
        commit_args += [o.model_dump_json() for o in outbox]
        due = _score(next_due) if next_due is not None else None

        # Step 1 (see the module docstring): one pipeline, executed in this order by Redis.
        def build(pipe: Pipeline) -> None:
            if due is not None:
                pipe.zadd(keys.DUE, {account_id: due}, lt=True)
            pipe.zscore(keys.DUE, account_id)
            self._evalsha(pipe, self._commit, commit_keys, commit_args)

        *_, indexed, committed = await self._pipeline(build)
        if not committed:
            return False
        # Step 2: only when the index is not already exact. The commit has happened: if this
        # step fails the index stays earlier than the truth (safe, corrected by the next
        # commit), so report the commit as done rather than as a store failure.
        try:
            if due is not None:
                if indexed is None or int(indexed) != due:
                    await self._redis.zadd(keys.DUE, {account_id: due})
            elif indexed is not None:
                await self._redis.zrem(keys.DUE, account_id)
        except _UNAVAILABLE as exc:
            log.warning(
                "account %s committed; its due-timer index stays early until its next commit "
                "(Redis at %s: %s)",
                account_id,
                self._where,
                exc,
            )
        return True

    def lock(self, account_id: str, ttl_ms: int = 30_000) -> AccountLock:
        return _RedisLock(self, account_id, ttl_ms)

    # --- timers --------------------------------------------------------------------------

    @_translated
    async def due_accounts(self, now: datetime, limit: int = 500) -> list[str]:
        if limit <= 0:
            return []
        raw = await self._redis.zrange(
            keys.DUE, "-inf", _score(now), byscore=True, offset=0, num=limit
        )
        return [_text(r) for r in cast(list[bytes], raw)]

    @_translated
    async def set_due(self, account_id: str, at: datetime | None) -> None:
        if at is None:
            await self._redis.zrem(keys.DUE, account_id)
        else:
            await self._redis.zadd(keys.DUE, {account_id: _score(at)})

    # --- outbox --------------------------------------------------------------------------

    @_translated
    async def pop_outbox(self, account_id: str) -> Outbound | None:
        raw = cast(bytes | None, await self._redis.lpop(keys.outbox(account_id)))
        return Outbound.model_validate_json(raw) if raw is not None else None

    # --- accounts (reports) and per-account facts ---------------------------------------

    @_translated
    async def account_ids(self) -> list[str]:
        ids: list[str] = []
        async for key in self._redis.scan_iter(
            match=keys.account_pattern(keys.ACCOUNT), count=1000
        ):
            account_id = keys.account_of(_text(key), keys.ACCOUNT)
            if account_id is not None:
                ids.append(account_id)
        return sorted(ids)

    @_translated
    async def get_meta(self, account_id: str, key: str) -> str | None:
        raw = await self._redis.hget(keys.meta(account_id), key)
        return _text(raw) if raw is not None else None

    @_translated
    async def set_meta(self, account_id: str, key: str, value: str) -> None:
        await self._redis.hset(keys.meta(account_id), key, value)

    # --- deferred messages ---------------------------------------------------------------

    @_translated
    async def defer(self, account_id: str, message: Outbound) -> None:
        await self._redis.rpush(keys.deferred(account_id), message.model_dump_json())

    @_translated
    async def deferred(self, account_id: str) -> list[Outbound]:
        raw = await self._redis.lrange(keys.deferred(account_id), 0, -1)
        return [Outbound.model_validate_json(r) for r in raw]

    @_translated
    async def take_deferred(self, account_id: str, message_id: str) -> Outbound | None:
        key = keys.deferred(account_id)
        for raw in await self._redis.lrange(key, 0, -1):
            message = Outbound.model_validate_json(raw)
            # LREM of the exact element is the atomic claim: only one caller removes it.
            if message.id == message_id and await self._redis.lrem(key, 1, _text(raw)):
                return message
        return None

    # --- per-phone ledger of sends -------------------------------------------------------

    @_translated
    async def record_send(self, phone: str, record: SendRecord) -> None:
        key = keys.sends(phone)
        score = _score(record.at)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {record.model_dump_json(): score})
            pipe.zremrangebyscore(key, "-inf", score - _LEDGER_KEEP_US)
            pipe.expire(key, _LEDGER_KEEP_US // 1_000_000)
            await pipe.execute()

    @_translated
    async def send_history(self, phone: str, since: datetime) -> list[SendRecord]:
        raw = await self._redis.zrange(keys.sends(phone), _score(since), "+inf", byscore=True)
        return [SendRecord.model_validate_json(r) for r in cast(list[bytes], raw)]

    # --- suppression list ----------------------------------------------------------------

    @_translated
    async def add_opt_out(self, phone: str) -> None:
        await self._redis.sadd(keys.OPT_OUT, phone)

    @_translated
    async def is_opted_out(self, phone: str) -> bool:
        return bool(await self._redis.sismember(keys.OPT_OUT, phone))

    @_translated
    async def remove_opt_out(self, phone: str) -> None:
        await self._redis.srem(keys.OPT_OUT, phone)

    # --- audit ---------------------------------------------------------------------------

    @_translated
    async def append_audit(self, account_id: str, entries: Sequence[AuditEntry]) -> None:
        if entries:
            await self._redis.rpush(keys.audit(account_id), *(e.model_dump_json() for e in entries))

    @_translated
    async def read_audit(self, account_id: str, limit: int = 1000) -> list[AuditEntry]:
        if limit <= 0:
            return []
        raw = await self._redis.lrange(keys.audit(account_id), -limit, -1)
        return [AuditEntry.model_validate_json(r) for r in raw]

    # --- messages from unknown numbers ---------------------------------------------------

    @_translated
    async def add_unmatched(self, sms: InboundSms) -> bool:
        added = await self._add_unmatched(
            keys=[keys.unmatched_seen(sms.provider, sms.msg_id), keys.UNMATCHED],
            args=[sms.model_dump_json(), self._dedup_ttl_s],
        )
        return bool(added)

    @_translated
    async def list_unmatched(self, limit: int = 100) -> list[InboundSms]:
        if limit <= 0:
            return []
        raw = await self._redis.lrange(keys.UNMATCHED, -limit, -1)
        return [InboundSms.model_validate_json(r) for r in raw]

    # --- sandbox provider ----------------------------------------------------------------

    @_translated
    async def record_sandbox(self, message: Outbound) -> None:
        await self._push_capped(keys=[keys.SANDBOX], args=[message.model_dump_json(), SANDBOX_MAX])

    @_translated
    async def list_sandbox(self, limit: int = 200) -> list[Outbound]:
        if limit <= 0:
            return []
        raw = await self._redis.lrange(keys.SANDBOX, -limit, -1)
        return [Outbound.model_validate_json(r) for r in raw]

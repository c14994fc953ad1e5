"""The Redis store's per-account lock (``Store.lock``): SET NX PX with a random owner token, and
the combined steps a drain takes (bot.storage.base.AccountLock) as one script each — enqueue and
acquire, acquire and load, commit and go on (the store's commit script), release and look again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.desk.case import CaseChange
from bot.ids import new_id
from bot.records import AuditEntry, Outbound, QueuedEvent
from bot.storage import keys
from bot.storage.base import AccountLock, Loaded, Progress
from bot.storage.redis_codec import account_record
from bot.storage.redis_pack import unpack_text

if TYPE_CHECKING:
    from bot.storage.redis import RedisStore

# KEYS: queue, seen, lock, account, conversation, deferred
# ARGV: event JSON, claim TTL (s), token, ttl (ms)
# The store's dedup enqueue, then _ACQUIRE_AND_LOAD: {0} for a duplicate, {1} when the lock is
# someone else's, else {1, head, account, conversation, deferred}.
_ENQUEUE_AND_ACQUIRE = b"""
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return {0} end
redis.call('RPUSH', KEYS[1], ARGV[1])
if not redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[4]) then return {1} end
return {1, redis.call('LINDEX', KEYS[1], 0), redis.call('GET', KEYS[4]),
        redis.call('GET', KEYS[5]), redis.call('LRANGE', KEYS[6], 0, -1)}
"""

# KEYS: lock, queue, account, conversation, deferred   ARGV: token, ttl (ms)
# Nothing is read unless the lock was taken: state is read only by the lock's holder.
_ACQUIRE_AND_LOAD = b"""
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return {redis.call('LINDEX', KEYS[2], 0), redis.call('GET', KEYS[3]),
        redis.call('GET', KEYS[4]), redis.call('LRANGE', KEYS[5], 0, -1)}
"""

# KEYS: lock, queue   ARGV: token   Returns the number of queued events after the release.
_RELEASE_AND_CHECK = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('LLEN', KEYS[2])
"""

# KEYS: key   ARGV: expected value
DELETE_IF_EQUAL = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lock   ARGV: token, ttl (ms)
_REFRESH_IF_EQUAL = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

SCRIPTS = (
    _ENQUEUE_AND_ACQUIRE,
    _ACQUIRE_AND_LOAD,
    _RELEASE_AND_CHECK,
    DELETE_IF_EQUAL,
    _REFRESH_IF_EQUAL,
)


class RedisLock(AccountLock):
    """SET NX PX with a random owner token; refresh and release compare the token first."""

    def __init__(self, store: RedisStore, account_id: str, ttl_ms: int) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"lock ttl_ms must be positive, got {ttl_ms}")
        super().__init__(store, account_id)
        self._store = store
        self._where = store._where
        self._key = keys.lock(account_id)
        self._ttl_ms = ttl_ms
        # One token per lock object: a second acquire() by the same owner must not forget
        # the token of the lease it already holds.
        self._token = new_id()
        # Messages this lock committed to the outbox, by their JSON: when commit hands the
        # outbox back, these need no parsing.
        self._pushed: dict[bytes, Outbound] = {}

    async def acquire(self) -> bool:
        reply = await self._store._pipe.one("SET", self._key, self._token, "NX", "PX", self._ttl_ms)
        return reply is not None

    async def refresh(self) -> bool:
        return bool(
            await self._store._pipe.one(
                "EVAL", _REFRESH_IF_EQUAL, 1, self._key, self._token, self._ttl_ms
            )
        )

    async def release(self) -> None:
        await self._store._pipe.one("EVAL", DELETE_IF_EQUAL, 1, self._key, self._token)

    async def enqueue_and_acquire(
        self, event: QueuedEvent, dedup: str | None = None
    ) -> tuple[bool, Loaded | None]:
        if dedup is None:
            return await super().enqueue_and_acquire(event, dedup)
        a = self.account_id
        data = self._store._remember(event)
        queue, seen = keys.queue(a), keys.seen(a, dedup)
        state = (keys.account(a), keys.conversation(a), keys.deferred(a))
        args = (data, self._store._dedup_ttl_s, self._token, self._ttl_ms)
        reply = await self._store._pipe.one(
            "EVAL", _ENQUEUE_AND_ACQUIRE, 6, queue, seen, self._key, *state, *args
        )
        if not reply[0]:
            self._store._queued.pop(data)  # a provider's retry: the first copy is the one queued
            return False, None
        return True, self._loaded(reply[1:]) if len(reply) > 1 else None

    async def acquire_and_load(self) -> Loaded | None:
        a = self.account_id
        keys_ = (self._key, keys.queue(a), keys.account(a), keys.conversation(a), keys.deferred(a))
        reply = await self._store._pipe.one(
            "EVAL", _ACQUIRE_AND_LOAD, len(keys_), *keys_, self._token, self._ttl_ms
        )
        return self._loaded(reply) if reply is not None else None

    def _loaded(self, reply: list[Any]) -> Loaded:
        head, account, conversation, deferred = reply
        return Loaded(
            account_record(account) if account is not None else None,
            unpack_text(conversation) if conversation is not None else None,
            [Outbound.model_validate_json(m) for m in deferred],
            self._store._event(head),
        )

    async def commit(
        self,
        event_id: str,
        conversation: str | None,
        audit: Sequence[AuditEntry],
        outbox: Sequence[Outbound],
        next_due: datetime | None,
        *,
        release_if_idle: bool = False,
        case: CaseChange | None = None,
    ) -> Progress:
        encoded = [(o.model_dump_json().encode(), o) for o in outbox]
        self._pushed.update(encoded)
        reply = await self._store._commit(
            self.account_id,
            event_id,
            conversation,
            audit,
            [raw for raw, _ in encoded],
            next_due,
            lock=(self._key, self._token, self._ttl_ms),
            release_if_idle=release_if_idle,
            case=case,
        )
        committed = bool(reply[0])
        if not reply[1]:
            return Progress(committed, held=False, head=None, outbox=[])
        if reply[2] is not None:
            return Progress(committed, held=True, head=self._store._event(reply[2]), outbox=[])
        if len(reply) > 4:  # released by the script, with the queue empty
            self._pushed.clear()
            return Progress(committed, True, None, [], released=True, waiting=False)
        taken = [self._pushed.get(raw) or Outbound.model_validate_json(raw) for raw in reply[3]]
        self._pushed.clear()
        return Progress(committed, held=True, head=None, outbox=taken)

    async def release_and_check(self) -> bool:
        waiting = await self._store._pipe.one(
            "EVAL", _RELEASE_AND_CHECK, 2, self._key, keys.queue(self.account_id), self._token
        )
        return bool(waiting)

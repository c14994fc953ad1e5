"""The due-timer index of the Redis store (mixed into ``bot.storage.redis.RedisStore``).

One sorted set, account id -> earliest timer (µs since the epoch), scanned for due accounts.
On one server (or a Sentinel-watched primary) it is ``smsbot:due``. On a Redis Cluster it is
sharded by slot range (``keys.due_shards``): each shard sits in the slot range of the
accounts it indexes, so the index steps around a commit go to the account's own primary with
its script, in the same write and read, instead of to the one primary that holds a single
index. Why (bench/cluster_groups.py, 3 primaries, 400 replies): with one index, 1.6 of a
reply's 5.0 groups reached several primaries (2.2 extra runs, each a send and a read more);
sharded, 1.0 (1.4). A scan reads every shard in one group (64 reads, a few µs each on the
servers); ``smsbot:due`` is read too, for entries written before the index was sharded, which
are moved to their shard as they come due.

The crash-safety rule is the module docstring's of bot.storage.redis: the index may be earlier
than the truth, never later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.records import Outbound
from bot.storage import keys
from bot.storage.base import hidden_deferred
from bot.storage.redis_codec import as_text, score
from bot.storage.resp import Connection
from bot.storage.resp_cluster import ClusterConnection


def _pairs(reply: list[Any]) -> list[tuple[int, str]]:
    """A ``ZRANGE … WITHSCORES`` reply as (score, member) pairs."""
    return [(int(float(s)), as_text(m)) for m, s in zip(reply[0::2], reply[1::2], strict=True)]


class RedisDue:
    """Provided by :class:`bot.storage.redis.RedisStore`."""

    _pipe: Connection

    def _due_key(self, account_id: str) -> str:
        """The index entry's key for an account."""
        if isinstance(self._pipe, ClusterConnection):
            return keys.due_shard(account_id)
        return keys.DUE

    def _due_indexes(self) -> tuple[str, ...]:
        """Every key a scan reads (the unsharded one last)."""
        if isinstance(self._pipe, ClusterConnection):
            return (*keys.due_shards(), keys.DUE)
        return (keys.DUE,)

    async def backlog(self, now: datetime) -> dict[str, tuple[int, float]]:
        at = score(now)
        indexes = self._due_indexes()
        replies = await self._pipe.call(
            *(
                command
                for key in (*indexes, keys.SEND_QUEUE)
                for command in (
                    ("ZCOUNT", key, "-inf", at),
                    ("ZRANGE", key, 0, 0, "WITHSCORES"),
                )
            )
        )

        def of(pairs: list[Any]) -> tuple[int, float]:
            count = sum(int(n) for n in pairs[0::2])
            firsts = [float(first[1]) for first in pairs[1::2] if first]
            # Scores are microseconds (redis_codec.score).
            return count, max(0.0, (at - min(firsts)) / 1e6) if count and firsts else 0.0

        return {"timers": of(replies[:-2]), "sends": of(replies[-2:])}

    async def due_accounts(self, now: datetime, limit: int = 500) -> list[str]:
        if limit <= 0:
            return []
        indexes = self._due_indexes()
        if len(indexes) == 1:
            raw = await self._pipe.one(
                "ZRANGE", keys.DUE, "-inf", score(now), "BYSCORE", "LIMIT", 0, limit
            )
            return [as_text(r) for r in raw]
        replies = await self._pipe.call(
            *(
                ("ZRANGE", key, "-inf", score(now), "BYSCORE", "LIMIT", 0, limit, "WITHSCORES")
                for key in indexes
            )
        )
        entries = [_pairs(reply) for reply in replies]
        if entries[-1]:  # smsbot:due, written before the index was sharded
            await self._to_shards(entries[-1])
        found = sorted(e for shard in entries for e in shard)
        return list(dict.fromkeys(a for _, a in found[:limit]))

    async def _to_shards(self, entries: list[tuple[int, str]]) -> None:
        """Entries of the unsharded index moved to their shards: added first (``ZADD LT``: an
        earlier entry there stays), then removed (the index is never later than the truth)."""
        await self._pipe.call(
            *(("ZADD", keys.due_shard(a), "LT", at, a) for at, a in entries),
            *(("ZREM", keys.DUE, a) for _, a in entries),
        )

    async def lower_due(self, account_id: str, at: datetime) -> None:
        await self._pipe.one("ZADD", self._due_key(account_id), "LT", score(at), account_id)

    async def set_due(self, account_id: str, at: datetime | None) -> None:
        key = self._due_key(account_id)
        if at is None:
            await self._raise_due(account_id, ("ZREM", key, account_id), None)
        else:
            await self._raise_due(account_id, ("ZADD", key, score(at), account_id), at)

    async def _raise_due(
        self, account_id: str, command: tuple[Any, ...], written: datetime | None
    ) -> None:
        """``command`` raises (or removes) the account's due entry; the deferred list is read
        after it in the same group, for bot.storage.base.hidden_deferred's check (no extra
        round trip)."""
        _, raw = await self._pipe.call(command, ("LRANGE", keys.deferred(account_id), 0, -1))
        earliest = hidden_deferred([Outbound.model_validate_json(r) for r in raw], written)
        if earliest is not None:
            await self.lower_due(account_id, earliest)

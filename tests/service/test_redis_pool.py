"""The Redis store under a burst: more concurrent calls than pooled connections wait for one.

redis-py's default asyncio pool raises MaxConnectionsError at once when every connection is
busy; the store turned that into StoreUnavailable, so a burst of webhooks got 503s and drains
aborted with their account locks held (found by bench/inbound.py). The store's pool waits.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from bot.storage.redis import RedisStore

if TYPE_CHECKING:
    from conftest import RedisServer  # tests/service/conftest.py (fixtures only at run time)


async def test_more_concurrent_calls_than_connections_all_succeed(
    redis_server: RedisServer,
) -> None:
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.flushdb()
    store = RedisStore.from_url(redis_server.url, max_connections=3)
    try:
        results = await asyncio.gather(
            *(store.find_account(f"+8613800{i:06d}") for i in range(200))
        )
        assert results == [None] * 200
        locks = [store.lock(f"acc-{i:04d}") for i in range(50)]
        assert all(await asyncio.gather(*(lock.acquire() for lock in locks)))
        await asyncio.gather(*(lock.release() for lock in locks))
    finally:
        await store.close()

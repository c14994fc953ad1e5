"""The store under test by kind, shared by conftest's ``store`` fixture and the contract
suites, which also run on a Redis Cluster (their own ``store`` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from bot.storage.base import Store
from bot.storage.memory import MemoryStore
from bot.storage.redis import RedisStore

# The store contract suites run on these; other tests on the first two.
CONTRACT_KINDS = ["memory", "redis", "cluster"]


@asynccontextmanager
async def redis_store_on(url: str) -> AsyncIterator[RedisStore]:
    """A Redis store on ``url``'s server, emptied first; closed after."""
    async with aioredis.Redis.from_url(url) as admin:
        await admin.flushdb()
    store = RedisStore.from_url(url)
    try:
        yield store
    finally:
        await store.close()


async def open_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """The store ``request.param`` names (memory, redis or cluster), empty; closed after."""
    if request.param == "cluster":
        url = await request.getfixturevalue("redis_cluster").flush_url()
        cluster_store = RedisStore.from_url(url)
        try:
            yield cluster_store
        finally:
            await cluster_store.close()
        return
    if request.param == "memory":
        memory = MemoryStore()
        yield memory
        await memory.close()
        return
    # Requested only here, so `-k memory` runs without a redis-server.
    async with redis_store_on(request.getfixturevalue("redis_server").url) as store:
        yield store

"""Bursts: more concurrent work than Redis connections or drain slots (found by
bench/inbound.py).

redis-py's default asyncio pool raises MaxConnectionsError at once when every connection is
busy; under a burst the store turned that into 503s and aborted drains that kept their
account locks until the TTL. The store now waits for a connection, and the pipeline drains
a bounded number of accounts at a time.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from bot.context import PIPELINE
from bot.storage.base import Store
from bot.storage.redis import RedisStore
from intents import Understander
from tests.service.apphelpers import (
    AUTH,
    account,
    borrower_texts,
    client,
    conversation,
    post_twilio,
)

if TYPE_CHECKING:
    from conftest import RedisServer  # tests/service/conftest.py (fixtures only at run time)


async def test_many_concurrent_calls_share_one_connection(redis_server: RedisServer) -> None:
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.flushdb()
        before = len(await admin.client_list())
        store = RedisStore.from_url(redis_server.url)
        try:
            phones = [f"+8613800{i:06d}" for i in range(200)]
            found = await asyncio.gather(*(store.find_account(p) for p in phones))
            assert found == [None] * 200
            locks = [store.lock(f"acc-{i:04d}") for i in range(50)]
            assert all(await asyncio.gather(*(lock.acquire() for lock in locks)))
            await asyncio.gather(*(lock.release() for lock in locks))
            # Hundreds of concurrent operations, one multiplexed connection.
            assert len(await admin.client_list()) == before + 1
        finally:
            await store.close()


async def test_a_burst_to_more_accounts_than_drain_slots_is_processed_once_in_order(
    nlu: Understander, store: Store
) -> None:
    n = 80  # more than the pipeline's 32 drain slots
    texts = ["你好", "还差多少", "好的"]
    async with client(nlu, store=store) as c:
        rows = [account(i) for i in range(n)]
        r = await c.post("/api/accounts", json={"accounts": rows, "start": False}, headers=AUTH)
        assert r.status == 200
        results = await asyncio.gather(
            *(
                post_twilio(c, row["phone"], text, f"SM{i:04d}{j:028d}")
                for i, row in enumerate(rows)
                for j, text in enumerate(texts)
            )
        )
        assert [x.status for x in results] == [200] * (n * len(texts))
        await c.app[PIPELINE].idle()
        for row in rows:
            conv = await conversation(c, row["id"])
            assert sorted(borrower_texts(conv)) == sorted(texts)  # each exactly once
            steps = [e["detail"] for e in conv["transcript"] if e["kind"] == "step"]
            assert all(x["after"] == y["before"] for x, y in itertools.pairwise(steps))

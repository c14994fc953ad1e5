"""The multiplexed Redis connection (bot/storage/resp.py) on the run's real redis-server.

The store's contract suite covers what the store does with it; these pin the connection's own
promises: URLs, authentication, database selection, replies in order, error replies confined
to their group, callers that give up, a server that misbehaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bot.storage.base import StoreUnavailable
from bot.storage.resp import RedisConnection

if TYPE_CHECKING:
    from conftest import RedisServer  # tests/service/conftest.py (fixtures only at run time)


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    async with aioredis.Redis.from_url(redis_server.url) as client:
        await client.flushall()
        yield client


@contextlib.asynccontextmanager
async def connected(url: str, **kw: object) -> AsyncIterator[RedisConnection]:
    conn = RedisConnection(url, **kw)  # type: ignore[arg-type]
    try:
        yield conn
    finally:
        await conn.close()


def test_urls() -> None:
    c = RedisConnection("redis://user:p%40ss@db.example:6380/3")
    assert (c.where, c.db) == ("db.example:6380/3", 3)
    assert RedisConnection("redis://localhost").where == "localhost:6379/0"
    assert RedisConnection("rediss://h:1/0?db=2").db == 2
    assert RedisConnection("unix:///run/redis.sock?db=4").where == "/run/redis.sock/4"
    with pytest.raises(ValueError, match="redis://"):
        RedisConnection("http://localhost:6379")
    with pytest.raises(ValueError, match="not a number"):
        RedisConnection("redis://localhost/x")


async def test_groups_run_in_order_and_concurrent_calls_share_one_connection(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    clients_before = len(await admin.client_list())
    async with connected(redis_server.url) as conn:
        replies = await conn.call(("SET", "k", "v"), ("GET", "k"), ("INCR", "n"), ("GET", "none"))
        assert replies == [b"OK", b"v", 1, None]
        counts = await asyncio.gather(*(conn.one("INCR", "n") for _ in range(300)))
        assert sorted(counts) == list(range(2, 302))
        assert len(await admin.client_list()) == clients_before + 1


async def test_an_error_reply_fails_its_group_only(redis_server: RedisServer) -> None:
    async with connected(redis_server.url) as conn:
        await conn.one("SET", "s", "text")

        async def bad() -> None:
            await conn.call(("SET", "before", "1"), ("INCR", "s"))

        results = await asyncio.gather(bad(), conn.one("GET", "s"), return_exceptions=True)
        assert isinstance(results[0], ResponseError) and "not an integer" in str(results[0])
        assert results[1] == b"text"
        assert await conn.one("GET", "before") == b"1"  # what came before in the group ran


async def test_a_cancelled_caller_does_not_shift_the_replies(redis_server: RedisServer) -> None:
    async with connected(redis_server.url) as conn:
        await conn.one("SET", "a", "1")
        await conn.one("SET", "b", "2")
        waiting = asyncio.ensure_future(conn.one("GET", "a"))
        await asyncio.sleep(0)  # written, its reply not read yet
        waiting.cancel()
        assert await conn.one("GET", "b") == b"2"
        assert await conn.one("GET", "a") == b"1"


async def test_database_and_authentication(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    await admin.acl_setuser(
        "smsbot-test", enabled=True, passwords=["+s3cret"], keys="*", commands=["+@all"]
    )
    try:
        url = f"redis://smsbot-test:s3cret@127.0.0.1:{redis_server.port}/5"
        async with connected(url) as conn:
            await conn.one("SET", "in5", "yes")
        async with aioredis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/5") as db5:
            assert await db5.get("in5") == b"yes"
            await db5.flushdb()
        wrong = f"redis://smsbot-test:nope@127.0.0.1:{redis_server.port}/0"
        async with connected(wrong) as conn:
            with pytest.raises(StoreUnavailable, match="AuthenticationError") as caught:
                await conn.one("PING")
            assert "nope" not in str(caught.value)
        bad_db = f"redis://127.0.0.1:{redis_server.port}/999"
        async with connected(bad_db) as conn:
            with pytest.raises(StoreUnavailable, match="refused the connection set-up"):
                await conn.one("PING")
    finally:
        await admin.acl_deluser("smsbot-test")


async def test_scripts_go_by_sha_and_are_loaded_again_after_a_flush(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    script = b"return redis.call('INCR', KEYS[1])"
    async with connected(redis_server.url, scripts=[script]) as conn:
        assert await conn.one("EVAL", script, 1, "counter") == 1
        info = await admin.info("commandstats")
        assert "cmdstat_evalsha" in info and "cmdstat_eval" not in info
        await admin.script_flush()
        assert await conn.one("EVAL", script, 1, "counter") == 2  # ran once, not twice


class FakeRedis:
    """A fake server answering each read with ``reply``; counts its connections."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.read(1024):
                writer.write(self.reply)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def test_garbage_from_the_server_makes_the_store_unavailable() -> None:
    async with FakeRedis(b"?garbage\r\n") as url, connected(url) as conn:
        with pytest.raises(StoreUnavailable, match="garbage"):
            await conn.one("PING")


async def test_a_connection_that_sent_an_unasked_reply_is_not_used_again() -> None:
    fake = FakeRedis(b"+OK\r\n+EXTRA\r\n")
    async with fake as url, connected(url) as conn:
        assert await conn.one("PING") == b"OK"
        await asyncio.sleep(0.05)  # the extra reply has arrived: the stream is out of step
        assert await conn.one("PING") == b"OK"
        assert fake.connections == 2


async def test_a_silent_server_times_out() -> None:
    async with FakeRedis(b"") as url, connected(url, socket_timeout=0.2) as conn:
        with pytest.raises(StoreUnavailable, match="Timeout"):
            await conn.one("PING")

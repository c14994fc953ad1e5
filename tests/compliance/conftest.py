from __future__ import annotations

import pytest

from tests.service.conftest import redis_server  # noqa: F401  (a private redis-server)


@pytest.fixture
async def redis_url(request: pytest.FixtureRequest) -> str:
    """A clean database on the session's private redis-server."""
    from bot.storage.redis import RedisStore

    server = request.getfixturevalue("redis_server")
    store = RedisStore.from_url(server.url)
    await store._redis.flushdb()
    await store.close()
    return str(server.url)

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from tests.service.conftest import redis_server  # noqa: F401  (a private redis-server)


@pytest.fixture
async def redis_url(request: pytest.FixtureRequest) -> str:
    """A clean database on the session's private redis-server."""

    server = request.getfixturevalue("redis_server")
    async with aioredis.Redis.from_url(server.url) as admin:
        await admin.flushdb()
    return str(server.url)

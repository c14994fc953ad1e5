"""The agents' store seam's contract, run on the memory store and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from bot.storage import keys
from bot.storage.agents import AgentRecord, AgentStore, MemoryAgentStore, open_agent_store
from bot.storage.base import StoreUnavailable
from bot.storage.redis_agents import RedisAgentStore

if TYPE_CHECKING:
    from conftest import RedisServer

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def agent(name: str = "li.na", **kw: object) -> AgentRecord:
    fields: dict[str, object] = {
        "name": name,
        "role": "agent",
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(kw)
    return AgentRecord.model_validate(fields)


@pytest.fixture(params=["memory", "redis", "cluster"])
async def agents(request: pytest.FixtureRequest) -> AsyncIterator[AgentStore]:
    if request.param == "memory":
        yield MemoryAgentStore()
        return
    if request.param == "cluster":
        url = await request.getfixturevalue("redis_cluster").flush_url()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        async with aioredis.Redis.from_url(server.url) as admin:
            await admin.flushdb()
        url = server.url
    store = open_agent_store(url)
    assert isinstance(store, RedisAgentStore)
    try:
        yield store
    finally:
        await store.close()


async def test_create_get_and_a_taken_name(agents: AgentStore) -> None:
    assert await agents.get("li.na") is None
    assert await agents.create(agent())
    assert await agents.get("li.na") == agent()
    assert not await agents.create(agent(role="supervisor"))  # taken: nothing changes
    got = await agents.get("li.na")
    assert got is not None and got.role == "agent"


async def test_all_is_sorted_by_name(agents: AgentStore) -> None:
    assert await agents.all() == []
    for name in ("zhou", "an", "ma.li"):
        await agents.create(agent(name))
    assert [a.name for a in await agents.all()] == ["an", "ma.li", "zhou"]


async def test_replace_is_a_compare_and_set_on_the_generation(agents: AgentStore) -> None:
    first = agent()
    assert not await agents.replace(first.changed(T0, disabled=True))  # nobody to replace
    await agents.create(first)
    later = T0 + timedelta(minutes=5)
    disabled = first.changed(later, disabled=True)
    assert disabled.generation == 2 and disabled.updated_at == later
    assert await agents.replace(disabled)
    # A change made from the old record (read before the other change) is refused.
    assert not await agents.replace(first.changed(later, password_hash="other"))
    assert await agents.get("li.na") == disabled
    enabled = disabled.changed(later, disabled=False)
    assert await agents.replace(enabled)
    assert await agents.get("li.na") == enabled


async def test_concurrent_changes_one_wins(agents: AgentStore) -> None:
    first = agent()
    await agents.create(first)
    results = await asyncio.gather(
        agents.replace(first.changed(T0, disabled=True)),
        agents.replace(first.changed(T0, role="supervisor")),
    )
    assert sorted(results) == [False, True]
    stored = await agents.get("li.na")
    assert stored is not None and stored.generation == 2


async def test_concurrent_creations_one_wins(agents: AgentStore) -> None:
    results = await asyncio.gather(*(agents.create(agent(role=r)) for r in ("agent", "supervisor")))
    assert sorted(results) == [False, True]


def test_record_rejects_bad_names_and_roles() -> None:
    for name in ("", "a", "Li", "li na", "李娜", "x" * 33, ".dot", "a{b}"):
        with pytest.raises(ValidationError):
            agent(name)
    with pytest.raises(ValidationError):
        agent(role="admin")
    with pytest.raises(ValidationError):
        agent(created_at=datetime(2026, 1, 1))  # naive


async def test_redis_keeps_agents_in_one_documented_hash(redis_server: RedisServer) -> None:
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.flushdb()
        store = RedisAgentStore.from_url(redis_server.url)
        try:
            await store.create(agent())
        finally:
            await store.close()
        assert await admin.keys("*") == [keys.AGENTS.encode()]
        assert keys.AGENTS == "smsbot:agents"


async def test_redis_down_is_store_unavailable() -> None:
    store = RedisAgentStore.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("li.na")
    finally:
        await store.close()

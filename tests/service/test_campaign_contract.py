"""The campaigns' store seam (bot.storage.campaigns) on every implementation (memory and a
real Redis): unique names, idempotent membership, the atomic take, the releasing lease,
pause, resume, cancel and done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.campaigns.model import Campaign, CampaignConflict, CampaignNotFound
from bot.storage.base import Store
from tests.service.storehelpers import CONTRACT_KINDS, open_store


@pytest.fixture(params=CONTRACT_KINDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Memory, one Redis, and a Redis Cluster: the contract holds on each."""
    async for opened in open_store(request):
        yield opened


T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def made(store: Store, name: str = "十一月", start: datetime = T0) -> Campaign:
    c = Campaign(name=name, flow="collections", start_at=start, rate=2, created_at=T0)
    return await store.campaigns.create(c)


async def test_created_campaigns_are_found_by_id_and_name_and_listed(store: Store) -> None:
    a = await made(store)
    b = await made(store, "second")
    assert await store.campaigns.get(a.id) == a
    assert await store.campaigns.find("十一月") == a
    assert await store.campaigns.find("nope") is None
    assert await store.campaigns.get("0" * 32) is None
    assert await store.campaigns.get("a}b") is None
    assert [c.id for c in await store.campaigns.list_all()] == [a.id, b.id]


async def test_a_name_is_taken_once(store: Store) -> None:
    await made(store)
    with pytest.raises(CampaignConflict, match="exists already"):
        await made(store)


async def test_of_two_creations_at_once_of_one_name_one_wins(store: Store) -> None:
    results = await asyncio.gather(made(store, "same"), made(store, "same"), return_exceptions=True)
    won = [r for r in results if isinstance(r, Campaign)]
    assert len(won) == 1
    assert all(isinstance(r, CampaignConflict) for r in results if r not in won)
    assert [c.id for c in await store.campaigns.list_all()] == [won[0].id]
    assert await store.campaigns.find("same") == won[0]


async def test_members_are_added_once_in_order(store: Store) -> None:
    c = await made(store)
    other = await made(store, "other")
    assert await store.campaigns.add_members(c.id, ["a1", "a2", "a3"]) == 3
    assert await store.campaigns.add_members(c.id, ["a2", "a4"]) == 1
    await store.campaigns.add_members(other.id, ["a2"])
    assert await store.campaigns.members(c.id) == ["a1", "a2", "a3", "a4"]
    assert await store.campaigns.members(c.id, 1, 2) == ["a2", "a3"]
    assert sorted(await store.campaigns.campaigns_of("a2")) == sorted([c.id, other.id])
    got = await store.campaigns.get(c.id)
    assert got is not None and got.pending == 4
    await store.campaigns.count_import(c.id, 5, 2, first=True)
    await store.campaigns.count_import(c.id, 1, 1)  # the same import's next batch
    got = await store.campaigns.get(c.id)
    assert got is not None and (got.imported, got.rejected) == (6, 3)
    await store.campaigns.count_import(c.id, 0, 3, first=True)  # the file again: 3, not 6
    got = await store.campaigns.get(c.id)
    assert got is not None and (got.imported, got.rejected) == (6, 3)
    with pytest.raises(CampaignNotFound):
        await store.campaigns.add_members("0" * 32, ["a1"])


async def test_take_due_moves_each_id_to_one_taker(store: Store) -> None:
    c = await made(store)
    ids = [f"a{i}" for i in range(50)]
    await store.campaigns.add_members(c.id, ids)
    takes = await asyncio.gather(*(store.campaigns.take_due(c.id, 7, T0) for _ in range(10)))
    taken = [a for t in takes for a in t]
    assert sorted(taken) == sorted(ids)  # every id once, none twice
    got = await store.campaigns.get(c.id)
    assert got is not None and (got.state, got.pending, got.releasing) == ("running", 0, 50)
    assert await store.campaigns.take_due(c.id, 5, T0) == []


async def test_a_taken_id_is_stale_until_marked_released(store: Store) -> None:
    c = await made(store)
    await store.campaigns.add_members(c.id, ["a1", "a2", "a3"])
    assert await store.campaigns.take_due(c.id, 2, T0) == ["a1", "a2"]
    later = T0 + timedelta(seconds=31)
    assert await store.campaigns.stale(c.id, T0) == []
    assert sorted(await store.campaigns.stale(c.id, later)) == ["a1", "a2"]
    assert await store.campaigns.mark_released(c.id, ["a1", "a2"]) == 2
    assert await store.campaigns.mark_released(c.id, ["a1", "a2"]) == 0  # a repeat
    assert await store.campaigns.stale(c.id, later) == []
    got = await store.campaigns.get(c.id)
    assert got is not None and (got.released, got.state) == (2, "running")
    assert await store.campaigns.take_due(c.id, 5, T0) == ["a3"]
    await store.campaigns.mark_released(c.id, ["a3"])
    got = await store.campaigns.get(c.id)
    assert got is not None and (got.released, got.state, got.pending) == (3, "done", 0)
    # A new member runs a done campaign again.
    assert await store.campaigns.add_members(c.id, ["a3", "a4"]) == 1
    got = await store.campaigns.get(c.id)
    assert got is not None and got.state == "running"


async def test_pause_stops_takes_and_resume_goes_on(store: Store) -> None:
    c = await made(store)
    await store.campaigns.add_members(c.id, ["a1", "a2"])
    paused = await store.campaigns.set_state(c.id, "pause", T0)
    assert paused.state == "paused"
    assert await store.campaigns.take_due(c.id, 5, T0) == []
    assert (await store.campaigns.set_state(c.id, "pause", T0)).state == "paused"
    early = await store.campaigns.set_state(c.id, "resume", T0 - timedelta(hours=1))
    assert early.state == "scheduled"  # start_at is still ahead
    assert await store.campaigns.take_due(c.id, 1, T0) == ["a1"]
    await store.campaigns.set_state(c.id, "pause", T0)
    assert (await store.campaigns.set_state(c.id, "resume", T0)).state == "running"


async def test_cancel_drops_the_pending_and_keeps_what_was_taken(store: Store) -> None:
    c = await made(store)
    await store.campaigns.add_members(c.id, ["a1", "a2", "a3"])
    await store.campaigns.take_due(c.id, 1, T0)
    cancelled = await store.campaigns.set_state(c.id, "cancel", T0)
    assert (cancelled.state, cancelled.pending, cancelled.releasing) == ("cancelled", 0, 1)
    assert await store.campaigns.take_due(c.id, 5, T0) == []
    assert await store.campaigns.mark_released(c.id, ["a1"]) == 1  # in flight: still counted
    with pytest.raises(CampaignConflict, match="cannot resume"):
        await store.campaigns.set_state(c.id, "resume", T0)
    with pytest.raises(CampaignConflict, match="cancelled"):
        await store.campaigns.add_members(c.id, ["a9"])
    assert await store.campaigns.members(c.id) == ["a1", "a2", "a3"]


async def test_unknown_campaigns_are_refused(store: Store) -> None:
    with pytest.raises(CampaignNotFound):
        await store.campaigns.set_state("0" * 32, "pause", T0)
    assert await store.campaigns.take_due("0" * 32, 3, T0) == []
    assert await store.campaigns.members("x}y") == []

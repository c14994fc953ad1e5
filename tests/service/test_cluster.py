"""The store's own client on a real Redis Cluster: routing, redirections and scripts at the
client's level, then the service through a reshard and through a fail-over (nothing lost,
nothing twice). The contract suites run on the cluster too (their ``store`` fixture)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from bot.context import PIPELINE
from bot.storage.base import StoreUnavailable
from bot.storage.connect import connection_for
from bot.storage.resp_cluster import ClusterConnection
from bot.telemetry import metrics
from intents import Understander
from tests.service.apphelpers import AUTH, account, borrower_texts, client, generic_request
from tests.service.cluster import RedisCluster, wait_until

pytestmark = pytest.mark.timeout(180)

_INCR_IF = b"""
redis.call('INCR', KEYS[1])
return redis.call('INCR', KEYS[2])
"""


def _resent(kind: str) -> float:
    return metrics.REGISTRY.get_sample_value("smsbot_redis_resent_total", {"kind": kind}) or 0.0


def _keys_on_every_primary(n: int) -> list[str]:
    """n hash-tagged pairs' tags spread over the whole slot range."""
    return [f"t{i}" for i in range(n)]


async def test_a_group_over_three_primaries_keeps_its_order(redis_cluster_url: str) -> None:
    pipe = ClusterConnection(redis_cluster_url)
    try:
        names = [f"k{i}" for i in range(30)]
        assert len({key_slot(n.encode()) * 3 // 16384 for n in names}) == 3  # every primary
        commands: list[tuple[object, ...]] = [("SET", n, i) for i, n in enumerate(names)]
        commands += [("INCR", n) for n in names] + [("GET", n) for n in names]
        replies = await pipe.call(*commands)
        assert replies[60:] == [str(i + 1).encode() for i in range(30)]
        assert len(await pipe.primaries()) == 3
        found = [k async for batch in pipe.scan("k*") for k in batch]
        assert sorted(found) == sorted(n.encode() for n in names)
    finally:
        await pipe.close()


async def test_scripts_survive_a_script_flush_on_every_primary(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    pipe = connection_for(redis_cluster_url, scripts=(_INCR_IF,))
    try:
        tags = _keys_on_every_primary(20)
        run = [("EVAL", _INCR_IF, 2, f"{{{t}}}:a", f"{{{t}}}:b") for t in tags]
        assert await pipe.call(*run) == [1] * 20
        for port in redis_cluster.primaries():
            redis_cluster.command(port, "SCRIPT", "FLUSH")
        assert await pipe.call(*run) == [2] * 20  # NOSCRIPT: loaded again, each run once
    finally:
        await pipe.close()


async def test_a_reshard_under_a_stream_of_scripts_loses_and_repeats_nothing(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    # MOVED, ASK and TRYAGAIN all happen while slots (and their keys) migrate: every script
    # must have run exactly once in the end.
    pipe = connection_for(redis_cluster_url, scripts=(_INCR_IF,))
    tags = _keys_on_every_primary(200)
    rounds = 0
    stop = asyncio.Event()

    async def stream() -> None:
        nonlocal rounds
        while not stop.is_set():
            run = [("EVAL", _INCR_IF, 2, f"{{{t}}}:a", f"{{{t}}}:b") for t in tags]
            assert await pipe.call(*run) == [rounds + 1] * len(tags)
            rounds += 1

    try:
        source, target, *_ = redis_cluster.primaries()
        before = {k: _resent(k) for k in ("moved", "ask")}
        streaming = asyncio.create_task(stream())
        await asyncio.to_thread(redis_cluster.reshard, source, target, 300)
        stop.set()
        await streaming
        assert rounds > 0
        got = await pipe.call(*(("GET", f"{{{t}}}:a") for t in tags))
        assert got == [str(rounds).encode()] * len(tags)
        assert _resent("moved") > before["moved"]  # the stream met the moved slots
    finally:
        await pipe.close()


async def test_ask_and_tryagain_while_one_slot_migrates_key_by_key(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    # One slot migrated by hand, as redis-cli does it: keys moved one at a time. A command on
    # a key already moved gets ASK; a script whose two keys are split gets TRYAGAIN until
    # both have moved, then runs once on the importing node.
    pipe = ClusterConnection(redis_cluster_url, scripts=(_INCR_IF,))
    try:
        a, b = "{mig}:a", "{mig}:b"
        assert await pipe.call(("SET", a, 10), ("SET", b, 20)) == [b"OK", b"OK"]
        slot = key_slot(a.encode())
        by_addr = {f"127.0.0.1:{p}": p for p in redis_cluster.primaries()}
        source = by_addr[pipe._addr(slot)]
        target = next(p for p in by_addr.values() if p != source)
        ids = {p: redis_cluster.node_id(p) for p in (source, target)}
        redis_cluster.command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        redis_cluster.command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        redis_cluster.command(source, "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", a)
        before = {k: _resent(k) for k in ("ask", "tryagain", "moved")}
        assert await pipe.one("GET", a) == b"10"  # ASK: ASKING + GET on the target
        script = asyncio.create_task(pipe.one("EVAL", _INCR_IF, 2, a, b))
        await asyncio.sleep(0.15)  # TRYAGAIN meanwhile: the keys are on two nodes
        assert not script.done()
        redis_cluster.command(source, "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", b)
        assert await script == 21
        for port in (target, source):
            redis_cluster.command(port, "CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        assert await pipe.call(("GET", a), ("GET", b)) == [b"11", b"21"]  # MOVED: followed
        assert all(_resent(k) > n for k, n in before.items()), before
    finally:
        await pipe.close()


# --- the service --------------------------------------------------------------------------

TEXTS = ["你好", "我想问下", "还差多少", "好的", "明天还"]


async def _post_like_a_provider(c: Any, msg_id: str, phone: str, text: str) -> int:
    """Posts until answered 200 (a provider retries a 503 with the same message id)."""
    body, headers = generic_request(msg_id, phone, text)
    deadline = time.monotonic() + 60  # a fail-over takes a few seconds
    answers = 0
    while time.monotonic() < deadline:
        r = await c.post("/webhooks/generic", data=body, headers=headers)
        if r.status == 200:
            return answers
        assert r.status == 503, await r.text()
        answers += 1
        await asyncio.sleep(0.05)
    raise AssertionError(f"{msg_id} was not accepted within 60 s")


async def _stream(c: Any, accounts: int, texts: list[str], tag: str) -> int:
    """Each account's texts in order; accounts concurrently. The number of 503s."""

    async def one(i: int) -> int:
        phone = account(i)["phone"]
        return sum([await _post_like_a_provider(c, f"{tag}-{i}-{n}", phone, t)
                    for n, t in enumerate(texts)])  # fmt: skip

    return sum(await asyncio.gather(*(one(i) for i in range(1, accounts + 1))))


async def _settled_texts(c: Any, accounts: int, expected: int) -> dict[int, list[str]]:
    """Every account's borrower texts once each has ``expected`` of them (or 60 s passed:
    a drain cut by the outage leaves its lock to run out, SMSBOT_LOCK_TTL_MS, before
    another takes over); then a moment more, so a duplicate would show too."""
    deadline = time.monotonic() + 60
    got: dict[int, list[str]] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(StoreUnavailable):
            await c.app[PIPELINE].idle()
        got = {}
        for i in range(1, accounts + 1):
            r = await c.get(f"/api/conversations/acc-{i:04d}", headers=AUTH)
            if r.status == 200:
                got[i] = borrower_texts(await r.json())
        if len(got) == accounts and all(len(t) >= expected for t in got.values()):
            await asyncio.sleep(0.5)
            return {
                i: borrower_texts(await (await c.get(f"/api/conversations/acc-{i:04d}",
                                                     headers=AUTH)).json())
                for i in range(1, accounts + 1)
            }  # fmt: skip
        await asyncio.sleep(0.1)
    return got


async def _create(c: Any, accounts: int) -> None:
    rows = [account(i) for i in range(1, accounts + 1)]
    r = await c.post("/api/accounts", json={"accounts": rows, "start": False}, headers=AUTH)
    assert r.status == 200, await r.text()


async def test_the_service_through_a_reshard_loses_and_repeats_nothing(
    nlu: Understander, redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    accounts = 40
    async with client(nlu, redis_url=redis_cluster_url) as c:
        await _create(c, accounts)
        source, target, *_ = redis_cluster.primaries()
        resharding = asyncio.create_task(
            asyncio.to_thread(redis_cluster.reshard, source, target, 400)
        )
        await _stream(c, accounts, TEXTS, "reshard")
        await resharding
        got = await _settled_texts(c, accounts, len(TEXTS))
        assert got == {i: TEXTS for i in range(1, accounts + 1)}


async def test_the_service_through_fail_overs_loses_and_repeats_nothing(
    nlu: Understander, tmp_path: Path
) -> None:
    cluster = RedisCluster(tmp_path, primaries=3, replicas=1)
    cluster.start()
    accounts = 30
    try:
        async with client(nlu, redis_url=cluster.url) as c:
            await _create(c, accounts)
            # 1. A manual fail-over (the replica takes over once it has every write) during
            #    the stream.
            replica = next(p for p in cluster.alive() if p not in cluster.primaries())
            streaming = asyncio.create_task(_stream(c, accounts, TEXTS[:2], "manual"))
            await asyncio.sleep(0.2)
            cluster.command(replica, "CLUSTER", "FAILOVER")
            await streaming
            await wait_until(lambda: replica in cluster.primaries())
            cluster.wait_ok()
            # 2. A primary killed (kill -9) with its writes on its replica (WAIT); the stream
            #    goes on meanwhile: 503s until the replica is promoted, then served again.
            victim = next(p for p in cluster.primaries() if p != replica)
            cluster.command(victim, "WAIT", 1, 2000)
            cluster.kill(victim)
            unavailable = await _stream(c, accounts, TEXTS[2:], "killed")
            assert unavailable > 0  # the test did meet the outage
            got = await _settled_texts(c, accounts, len(TEXTS))
            assert got == {i: TEXTS for i in range(1, accounts + 1)}
    finally:
        cluster.stop()


def test_a_cluster_url_is_checked_at_start_up() -> None:
    for bad in (
        "redis+cluster://127.0.0.1",  # no port
        "redis+cluster://127.0.0.1:7000/3",  # a cluster has database 0 only
        "rediss+cluster://127.0.0.1:7000?ssl_cert_reqs=maybe",
    ):
        with pytest.raises(ValueError, match=r"host:port|database 0|ssl_cert_reqs"):
            connection_for(bad)
    pipe = connection_for("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001/0")
    assert isinstance(pipe, ClusterConnection)
    assert "s3cret" not in pipe.where  # logged: never the password
    assert pipe.node("10.0.0.3:7002").url == "redis://:s3cret@10.0.0.3:7002/0"


def test_each_due_index_shard_sits_in_the_slots_it_indexes() -> None:
    from bot.storage import keys

    width = 16384 // keys.DUE_SHARDS
    shards = keys.due_shards()
    assert len(set(shards)) == keys.DUE_SHARDS
    for n, key in enumerate(shards):
        assert key_slot(key.encode()) // width == n, key
    for i in range(500):
        account_id = f"acc-{i:04d}"
        slot = key_slot(keys.account(account_id).encode())
        assert key_slot(keys.due_shard(account_id).encode()) // width == slot // width


async def test_on_a_cluster_the_due_index_is_sharded_and_older_entries_are_moved(
    redis_cluster_url: str,
) -> None:
    """Due accounts are found over every shard, earliest first, up to the limit; the backlog
    adds the shards up; an entry of the single index written by an older version (which a
    cluster deployment may hold) is found as well and moved to its shard."""
    from datetime import UTC, datetime, timedelta

    from bot.storage import keys
    from bot.storage.redis import RedisStore
    from bot.storage.redis_codec import score

    t0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    store = RedisStore.from_url(redis_cluster_url)
    try:
        ids = [f"acc-{i:04d}" for i in range(40)]
        assert len({keys.due_shard(a) for a in ids}) > 20  # spread over many shards
        for i, a in enumerate(ids):
            await store.set_due(a, t0 + timedelta(minutes=i))
        assert await store._pipe.one("EXISTS", keys.DUE) == 0  # nothing in the single index
        assert await store.due_accounts(t0 + timedelta(minutes=9)) == ids[:10]
        assert await store.due_accounts(t0 + timedelta(hours=1), limit=5) == ids[:5]
        count, oldest = (await store.backlog(t0 + timedelta(minutes=9, seconds=30)))["timers"]
        assert (count, oldest) == (10, 570.0)
        # An entry an older version wrote: due before every other, then in its shard only.
        await store._pipe.one("ZADD", keys.DUE, score(t0 - timedelta(minutes=1)), "acc-old")
        assert (await store.due_accounts(t0))[:2] == ["acc-old", ids[0]]
        assert await store._pipe.one("EXISTS", keys.DUE) == 0
        shard = await store._pipe.one("ZSCORE", keys.due_shard("acc-old"), "acc-old")
        assert int(float(shard)) == score(t0 - timedelta(minutes=1))
        await store.set_due("acc-old", None)
        assert "acc-old" not in await store.due_accounts(t0 + timedelta(days=1))
    finally:
        await store.close()


async def test_a_dead_primary_makes_the_service_unready_and_is_the_node_the_log_names(
    nlu: Understander, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """From an integrator's trial: with one of three primaries shut down, /readyz said ready
    (it pinged one node) while every write to that node's slots got a 503; and the outage's
    WARNING named whichever node another request had addressed meanwhile, so "unavailable"
    and "available again" alternated for healthy nodes dozens of times."""
    import logging

    from bot.context import STORE
    from bot.storage.base import Store

    cluster = RedisCluster(tmp_path, primaries=3)
    cluster.start()
    try:
        async with client(nlu, redis_url=cluster.url) as c:
            assert (await c.get("/readyz")).status == 200
            store: Store = c.app[STORE]
            victim = cluster.primaries()[-1]
            cluster.kill(victim)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="bot.storage"):
                for _ in range(3):  # reads of every primary's slots, at once, again and again
                    await asyncio.gather(
                        *(store.get_conversation(f"acc-{i:04d}") for i in range(60)),
                        return_exceptions=True,
                    )
                r = await c.get("/readyz")
                assert r.status == 503, await r.text()
            lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.storage")]
            down = [line for line in lines if "is unavailable" in line]
            # (the cluster's line "… <node> of cluster …", or the node connection's own)
            named = [line.split(" is unavailable")[0] for line in down]
            assert down and all(f"127.0.0.1:{victim}" in n for n in named), down
            assert not [line for line in lines if "available again" in line], lines
    finally:
        cluster.stop()

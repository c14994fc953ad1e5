"""The service over a real Redis (and, where several processes share it, a Redis Cluster too):
several processes, restarts, crashes and outages."""

from __future__ import annotations

import asyncio
import itertools
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.context import PIPELINE
from intents import Understander
from tests.service.apphelpers import (
    AUTH,
    account,
    borrower_texts,
    client,
    conversation,
    daytime_clock,
    generic_request,
    post_twilio,
)
from tests.service.conftest import RedisServer
from tests.service.processes import free_port, serve, wait_ready

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


async def _settle(*clients: Any) -> None:
    for _ in range(3):  # a drain in one "process" may have been left to the other
        for c in clients:
            await c.app[PIPELINE].idle()
        await asyncio.sleep(0.05)


async def test_two_processes_process_one_borrower_in_order(
    nlu: Understander, shared_url: str
) -> None:
    # Two app instances with their own Redis clients and pipelines stand for two processes.
    async with client(nlu, redis_url=shared_url) as a, client(nlu, redis_url=shared_url) as b:
        r = await a.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        assert r.status == 200
        await _settle(a, b)
        texts = ["你好", "我想问下", "还差多少", "好的"]
        reqs = [generic_request(f"two-{i}", account(1)["phone"], t) for i, t in enumerate(texts)]
        results = await asyncio.gather(
            *(
                (a if i % 2 == 0 else b).post("/webhooks/generic", data=body, headers=h)
                for i, (body, h) in enumerate(reqs)
            )
        )
        assert [x.status for x in results] == [200] * 4
        await _settle(a, b)
        conv = await conversation(a, "acc-0001")
        assert sorted(borrower_texts(conv)) == sorted(texts)  # each exactly once
        steps = [e["detail"] for e in conv["transcript"] if e["kind"] == "step"]
        assert all(x["after"] == y["before"] for x, y in itertools.pairwise(steps))


async def test_each_process_reads_what_the_other_committed(
    nlu: Understander, redis_url: str
) -> None:
    # A process remembers the conversations it committed (bot.memo); when another process
    # has moved the borrower on since, the stored conversation must win.
    async with client(nlu, redis_url=redis_url) as a, client(nlu, redis_url=redis_url) as b:
        r = await a.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        assert r.status == 200
        await _settle(a, b)
        texts = ["明天还", "我已经还了", "怎么还", "好的"]
        for i, (text, c) in enumerate(zip(texts, (a, b, a, b), strict=True)):
            body, headers = generic_request(f"alt-{i}", account(1)["phone"], text)
            assert (await c.post("/webhooks/generic", data=body, headers=headers)).status == 200
            await _settle(c)
        conv = await conversation(a, "acc-0001")
        assert borrower_texts(conv) == texts
        steps = [e["detail"] for e in conv["transcript"] if e["kind"] == "step"]
        assert len({x["after"] for x in steps}) > 2  # the borrower did move between states
        assert all(x["after"] == y["before"] for x, y in itertools.pairwise(steps))


async def test_timers_survive_a_restart_and_fire_once(nlu: Understander, shared_url: str) -> None:
    clock = daytime_clock()  # three days on it is daytime too: the follow-up goes at once
    async with client(nlu, redis_url=shared_url, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        assert "timeout" in conv["timers"]  # the no-reply follow-up is pending
    # Down for three days; two processes come back at once.
    clock.advance(timedelta(days=3))
    async with (
        client(nlu, redis_url=shared_url, clock=clock) as a,
        client(nlu, redis_url=shared_url, clock=clock) as b,
    ):
        for _ in range(40):
            await asyncio.sleep(0.05)
            await _settle(a, b)
            conv = await conversation(a, "acc-0001")
            if (
                conv["state"] != "awaiting_reply"
                or conv["timers"].get("timeout", "") > clock.now().isoformat()
            ):
                break
        sent = await (await a.get("/api/sandbox/messages", headers=AUTH)).json()
        follow_ups = [m for m in sent if m["template"] != "first_reminder"]
        assert len(follow_ups) == 1, [m["template"] for m in sent]


async def test_redis_down_means_503_then_recovery(
    nlu: Understander, own_redis_server: RedisServer
) -> None:
    async with client(nlu, redis_url=own_redis_server.url) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        own_redis_server.stop()
        r = await post_twilio(c, account(1)["phone"], "明天还", "SM" + "7" * 32)
        assert r.status == 503  # the provider will retry
        assert (await c.get("/readyz")).status == 503
        own_redis_server.start()
        await asyncio.sleep(0.1)
        # The retry arrives after Redis is back (data lost with the in-memory server here,
        # so re-create the account as a fresh Redis would require).
        for _ in range(5):  # like a provider: retry while the answer is 503
            r = await c.post(
                "/api/accounts", json={"accounts": [account(1)], "start": False}, headers=AUTH
            )
            if r.status == 200:
                break
        for _ in range(5):
            r = await post_twilio(c, account(1)["phone"], "明天还", "SM" + "7" * 32)
            if r.status == 200:
                break
        assert r.status == 200
        for _ in range(20):  # ready again by itself, without a restart
            if (await c.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.1)
        assert (await c.get("/readyz")).status == 200
        await _settle(c)
        assert borrower_texts(await conversation(c, "acc-0001")) == ["明天还"]


async def test_crash_after_acknowledgement_is_recovered_once(shared_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        # 1. A process that acknowledges but does not get to process (then dies hard).
        proc = serve(shared_url, port, SMSBOT_PAUSE_PROCESSING="1")
        try:
            await wait_ready(session, base)
            async with session.post(
                base + "/api/accounts",
                json={"accounts": [account(1)], "start": False},
                headers=AUTH,
            ) as r:
                assert r.status == 200
            body, headers = generic_request("crash-1", account(1)["phone"], "明天还500")
            async with session.post(base + "/webhooks/generic", data=body, headers=headers) as r:
                assert r.status == 200  # acknowledged: the provider will not send it again
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # 2. Restarted: the queued message is processed once; a late provider retry is not.
        proc = serve(shared_url, port)
        try:
            await wait_ready(session, base)
            async with session.post(base + "/webhooks/generic", data=body, headers=headers) as r:
                assert r.status == 200
            for _ in range(100):
                async with session.get(base + "/api/conversations/acc-0001", headers=AUTH) as r:
                    conv = await r.json()
                if conv["state"] == "promised":
                    break
                await asyncio.sleep(0.1)
            assert borrower_texts(conv) == ["明天还500"]
            assert conv["state"] == "promised"
        finally:
            proc.terminate()
            proc.wait(timeout=20)


async def test_graceful_shutdown_finishes_in_flight_work(nlu: Understander, redis_url: str) -> None:
    async with client(nlu, redis_url=redis_url) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)], "start": False}, headers=AUTH)
        body, headers = generic_request("bye-1", account(1)["phone"], "下周一还")
        assert (await c.post("/webhooks/generic", data=body, headers=headers)).status == 200
        # Leaving the block shuts the app down at once, with the reply still being processed.
    async with client(nlu, redis_url=redis_url) as c:
        conv = await conversation(c, "acc-0001")
        assert borrower_texts(conv) == ["下周一还"]
        assert conv["state"] == "promised"


async def test_two_real_processes_keep_one_borrower_in_order(shared_url: str) -> None:
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [serve(shared_url, p) for p in ports]
    try:
        async with aiohttp.ClientSession() as session:
            for base in bases:
                await wait_ready(session, base)
            async with session.post(
                bases[0] + "/api/accounts",
                json={"accounts": [account(1)], "start": False},
                headers=AUTH,
            ) as r:
                assert r.status == 200
            texts = ["我想问一下", "还差多少", "能分期吗", "好的"]
            reqs = [generic_request(f"p2-{i}", account(1)["phone"], t) for i, t in enumerate(texts)]

            async def send(i: int) -> int:
                body, headers = reqs[i]
                async with session.post(
                    bases[i % 2] + "/webhooks/generic", data=body, headers=headers
                ) as r:
                    return r.status

            assert await asyncio.gather(*(send(i) for i in range(4))) == [200] * 4
            for _ in range(100):
                async with session.get(bases[1] + "/api/conversations/acc-0001", headers=AUTH) as r:
                    conv = await r.json()
                if len(borrower_texts(conv)) == 4:
                    break
                await asyncio.sleep(0.1)
            assert sorted(borrower_texts(conv)) == sorted(texts)
            steps = [e["detail"] for e in conv["transcript"] if e["kind"] == "step"]
            assert len(steps) == 4
            assert all(x["after"] == y["before"] for x, y in itertools.pairwise(steps))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)

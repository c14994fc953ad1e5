"""Timeouts (issue 16, item 16): a client trickling its body is cut off; a dead process's
account lock delays the borrower's next reply by at most the lock's TTL (a few seconds)."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from bot.context import PIPELINE
from bot.storage import keys
from intents import Understander
from tests.service.apphelpers import (
    AUTH,
    account,
    borrower_texts,
    client,
    conversation,
    generic_request,
)
from tests.service.processes import free_port, serve, wait_ready

pytestmark = pytest.mark.timeout(120)


async def _trickle(
    c: TestClient[Any, Any], body: bytes, headers: dict[str, str], gap: float
) -> tuple[bytes, float, bool]:
    """Sends the headers, then the body one byte per ``gap`` seconds while the server listens.
    Returns what the server answered, how long that took, and whether it closed."""
    reader, writer = await asyncio.open_connection(c.host, c.port)
    head = ["POST /webhooks/generic HTTP/1.1", "Host: sms.example.cn"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head += [f"Content-Length: {len(body)}", "Connection: close"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    started = time.monotonic()
    answer = asyncio.ensure_future(reader.read())  # until the server closes
    try:
        for byte in body:
            if answer.done():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(gap)
        data = await asyncio.wait_for(answer, 5)
        return data, time.monotonic() - started, True
    finally:
        answer.cancel()
        writer.close()


async def test_a_client_trickling_its_body_is_answered_408_and_cut_off(nlu: Understander) -> None:
    async with client(nlu, body_timeout_s=0.5) as c:
        body, headers = generic_request("trickle-1", "+8613800000001", "退订")
        data, took, closed = await _trickle(c, body, headers, gap=0.05)  # ~8 s for the body
        assert closed and data.startswith(b"HTTP/1.1 408"), data[:200]
        assert b"not received within 0.5 s" in data
        assert took < 2.0, took
        r = await c.get("/api/unmatched", headers=AUTH)
        assert await r.json() == []  # the trickled message was never accepted


async def test_a_body_sent_in_pieces_in_time_is_read(nlu: Understander) -> None:
    async with client(nlu, body_timeout_s=5) as c:
        body, headers = generic_request("pieces-1", "+8613800000001", "好的")
        data, _took, _closed = await _trickle(c, body, headers, gap=0.001)
        assert data.startswith(b"HTTP/1.1 200"), data[:300]


# --- a dead process's account lock ------------------------------------------------------------


async def _processed(c: TestClient[Any, Any], text: str, within: float) -> float:
    """Seconds until the borrower's ``text`` has been processed (it is in the transcript)."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if text in borrower_texts(await conversation(c, "acc-0001")):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{text!r} not processed within {within} s")


async def test_a_reply_waits_at_most_one_lock_ttl_behind_a_dead_holder(
    nlu: Understander, redis_url: str
) -> None:
    # The recovery scan is far away: only the watch can take the account over in time.
    async with client(nlu, redis_url=redis_url, lock_ttl_ms=1500, recovery_interval_s=600) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)], "start": False}, headers=AUTH)
        async with aioredis.Redis.from_url(redis_url) as admin:
            # What a process killed while draining the account leaves behind.
            await admin.set(keys.lock("acc-0001"), "dead-process", px=1500)
        body, headers = generic_request("dead-1", account(1)["phone"], "明天还500")
        assert (await c.post("/webhooks/generic", data=body, headers=headers)).status == 200
        took = await _processed(c, "明天还500", within=10)
        assert 1.0 <= took <= 1.5 + 0.7, took  # after the dead lock expired, at once


async def test_a_drain_longer_than_the_ttl_keeps_its_lock(
    nlu: Understander, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client(nlu, redis_url=redis_url, lock_ttl_ms=1000) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)], "start": False}, headers=AUTH)
        interpreter = c.app[PIPELINE].interpreter
        apply = interpreter.apply

        async def slow(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(2.5)  # a step 2.5 TTLs long (a stalled store, say)
            return await apply(*args, **kwargs)

        monkeypatch.setattr(interpreter, "apply", slow)
        body, headers = generic_request("slow-1", account(1)["phone"], "明天还500")
        assert (await c.post("/webhooks/generic", data=body, headers=headers)).status == 200
        async with aioredis.Redis.from_url(redis_url) as admin:
            await asyncio.sleep(1.8)
            assert await admin.pttl(keys.lock("acc-0001")) > 0  # refreshed, not expired
        await _processed(c, "明天还500", within=5)
        steps = [
            e for e in (await conversation(c, "acc-0001"))["transcript"] if e["kind"] == "step"
        ]
        assert len(steps) == 1  # processed once: nobody took the account over meanwhile


async def test_kill_9_while_holding_a_lock_delays_the_next_reply_by_at_most_the_ttl(
    redis_url: str,
) -> None:
    """Two real processes with the default settings (lock TTL 5 s, recovery every 10 s): A is
    killed while it drains a burst for the account; the borrower's next reply, sent to B at
    once, is processed within the TTL (before: up to 30 s TTL + 30 s recovery)."""
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    a, b = (serve(redis_url, p) for p in ports)
    phone, lock_key = account(1)["phone"], keys.lock("acc-0001")
    try:
        async with aiohttp.ClientSession() as session, aioredis.Redis.from_url(redis_url) as admin:
            for base in bases:
                await wait_ready(session, base)
            rows = {"accounts": [account(1)], "start": False}
            async with session.post(bases[1] + "/api/accounts", json=rows, headers=AUTH) as r:
                assert r.status == 200

            async def burst(i: int) -> None:
                body, headers = generic_request(f"burst-{i}", phone, f"我想问一下{i}")
                async with session.post(bases[0] + "/webhooks/generic", data=body, headers=headers):
                    pass

            sending = asyncio.gather(*(burst(i) for i in range(400)), return_exceptions=True)
            # Stop A while it holds the account's lock, then kill it: a crash mid-drain.
            for _ in range(2000):
                if await admin.get(lock_key) is not None:
                    a.send_signal(signal.SIGSTOP)
                    if await admin.get(lock_key) is not None:
                        break
                    a.send_signal(signal.SIGCONT)
                await asyncio.sleep(0.005)
            else:
                pytest.fail("process A never held the account's lock")
            a.send_signal(signal.SIGKILL)
            a.wait()
            killed = time.monotonic()
            left = await admin.pttl(lock_key)
            assert left > 0  # the dead process's lock
            await sending
            body, headers = generic_request("after-kill", phone, "明天还500")
            async with session.post(
                bases[1] + "/webhooks/generic", data=body, headers=headers
            ) as r:
                assert r.status == 200
            for _ in range(1000):
                async with session.get(bases[1] + "/api/conversations/acc-0001", headers=AUTH) as r:
                    conv = await r.json()
                if "明天还500" in borrower_texts(conv):
                    break
                await asyncio.sleep(0.02)
            took = time.monotonic() - killed
            print(f"\nkill -9 -> next reply processed: {took:.2f} s (lock had {left} ms left)")
            assert "明天还500" in borrower_texts(conv)
            assert took <= left / 1000 + 3.0, took  # then the queue it left is drained
            assert await admin.llen(keys.queue("acc-0001")) == 0  # the dead one's too
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)


async def test_serve_closes_a_connection_trickling_its_headers(redis_url: str) -> None:
    port = free_port()
    proc = serve(redis_url, port, SMSBOT_IDLE_TIMEOUT_S="1")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"http://127.0.0.1:{port}")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        closed = asyncio.ensure_future(reader.read())
        try:
            for byte in b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                if closed.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)
            await asyncio.wait_for(closed, 5)
            assert time.monotonic() - started < 3  # not the ~12 s the headers would take
        finally:
            closed.cancel()
            writer.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_a_providers_retry_of_a_reply_a_dead_process_queued_is_not_left_behind(
    nlu: Understander, redis_url: str
) -> None:
    # A process queued the reply (and claimed its id), then died holding the lock before it
    # acknowledged: the provider retries to another process, which finds a duplicate.
    async with client(nlu, redis_url=redis_url, lock_ttl_ms=1500, recovery_interval_s=600) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)], "start": False}, headers=AUTH)
        body, headers = generic_request("retried-1", account(1)["phone"], "明天还500")
        async with aioredis.Redis.from_url(redis_url) as admin:
            await admin.set(keys.lock("acc-0001"), "dead-process", px=60_000)
            assert (await c.post("/webhooks/generic", data=body, headers=headers)).status == 200
            await admin.set(keys.lock("acc-0001"), "dead-process", px=1500)  # dies, as if then
        c.app[PIPELINE]._unwatch("acc-0001")  # the dead process's watch died with it
        assert (await c.post("/webhooks/generic", data=body, headers=headers)).status == 200
        took = await _processed(c, "明天还500", within=10)
        assert took <= 1.5 + 0.7, took

"""``smsbot serve --workers N`` as real processes on a private redis-server: both workers
answer on one port, every reply is processed once, a killed worker is replaced, SIGTERM stops
everything cleanly, SIGHUP reloads every worker; and the refusals (memory store, demo)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.apphelpers import AUTH, account, borrower_texts, generic_request
from tests.service.conftest import RedisServer
from tests.service.processes import ROOT, free_port, serve, wait_ready

pytestmark = pytest.mark.timeout(180)
ACCOUNTS = 6
TEXTS = ["我想问一下", "还差多少", "能分期吗", "好的"]


@contextlib.asynccontextmanager
async def fresh_connections() -> AsyncIterator[aiohttp.ClientSession]:
    # A new connection per request: SO_REUSEPORT spreads connections, not requests.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


async def answering_pids(session: aiohttp.ClientSession, base: str, tries: int = 200) -> set[int]:
    """The pids /readyz names over ``tries`` connections (stops early once two answered)."""
    pids: set[int] = set()
    for _ in range(tries):
        async with session.get(base + "/readyz") as r:
            if r.status == 200:
                pids.add((await r.json())["pid"])
        if len(pids) >= 2:
            break
    return pids


async def both_answering(session: aiohttp.ClientSession, base: str) -> set[int]:
    """The two workers' pids, once both answer: /readyz of the first says nothing of the
    second, which may still be loading (a loaded machine: seconds later)."""
    deadline = time.monotonic() + 60
    pids: set[int] = set()
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            pids |= await answering_pids(session, base, tries=20)
        if len(pids) >= 2:
            return pids
        await asyncio.sleep(0.2)
    return pids


@contextlib.asynccontextmanager
async def two_workers(
    redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str, Path, set[int]]]:
    """``smsbot serve --workers 2`` once both workers answer: (supervisor, base URL, its log,
    the workers' pids); killed at the end if a test left it running."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = serve(redis_url, port, log, args=["--workers", "2"])
    try:
        async with fresh_connections() as session:
            await wait_ready(session, base)
            pids = await both_answering(session, base)
        assert len(pids) == 2, log.read_text(errors="replace")
        yield proc, base, log, pids
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_workers_share_the_port_and_stop_cleanly(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = serve(redis_url, port, log, args=["--workers", "2"], SMSBOT_METRICS_TOKEN="m-token")
    try:
        async with fresh_connections() as session:
            try:
                await wait_ready(session, base)
            except AssertionError:
                raise AssertionError(log.read_text(errors="replace")) from None
            first = await both_answering(session, base)
            assert len(first) == 2, f"one worker answered 200 connections: {first}"
            assert proc.pid not in first  # the parent serves nothing itself

            r = await session.post(
                base + "/api/accounts",
                json={"accounts": [account(i) for i in range(1, ACCOUNTS + 1)], "start": False},
                headers=AUTH,
            )
            assert r.status == 200
            # Every account's replies at once, each on its own connection (so over both
            # workers); each reply also a second time, as a provider's retry would.
            reqs = [
                generic_request(f"w-{i}-{n}", account(i)["phone"], text)
                for i in range(1, ACCOUNTS + 1)
                for n, text in enumerate(TEXTS)
            ]

            async def post(body: bytes, headers: dict[str, str]) -> int:
                async with session.post(
                    base + "/webhooks/generic", data=body, headers=headers
                ) as r:
                    return r.status

            statuses = await asyncio.gather(*(post(b, h) for b, h in reqs + reqs))
            assert statuses == [200] * len(reqs) * 2

            for i in range(1, ACCOUNTS + 1):
                conv: dict[str, object] = {}
                for _ in range(150):
                    async with session.get(
                        f"{base}/api/conversations/acc-{i:04d}", headers=AUTH
                    ) as r:
                        conv = await r.json()
                    if len(borrower_texts(conv)) >= len(TEXTS):
                        break
                    await asyncio.sleep(0.1)
                # Each reply once (the retries were recognised), the steps in one chain.
                assert sorted(borrower_texts(conv)) == sorted(TEXTS), conv
                steps = [e["detail"] for e in conv["transcript"] if e["kind"] == "step"]  # type: ignore[attr-defined]
                assert len(steps) == len(TEXTS)
                assert all(x["after"] == y["before"] for x, y in itertools.pairwise(steps))

            # /metrics: whichever worker answers counts every worker's replies (24, once each).
            for _ in range(6):
                async with session.get(
                    base + "/metrics", headers={"Authorization": "Bearer m-token"}
                ) as r:
                    assert r.status == 200
                    text = await r.text()
                inbound = [
                    s.value
                    for f in text_string_to_metric_families(text)
                    for s in f.samples
                    if s.name == "smsbot_events_total" and s.labels == {"kind": "inbound"}
                ]
                assert inbound == [len(reqs)], inbound
                # Each worker's CPU and memory by pid, whichever answers (no process_* of
                # one worker that would jump to the other's at the next scrape).
                samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
                cpu = {
                    s.labels["pid"] for s in samples if s.name == "smsbot_worker_cpu_seconds_total"
                }
                rss = {
                    s.labels["pid"]: s.value
                    for s in samples
                    if s.name == "smsbot_worker_resident_memory_bytes"
                }
                assert cpu == set(rss) == {str(p) for p in first}, (cpu, first)
                assert all(v > 10_000_000 for v in rss.values())
                assert not [s for s in samples if s.name.startswith("process_cpu")]

            # kill -9 one worker: the parent starts another, and the port keeps answering.
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 60
            now: set[int] = set()
            while time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError):
                    now = await answering_pids(session, base, tries=20)
                if len(now) == 2 and victim not in now:
                    break
                await asyncio.sleep(0.2)
            assert victim not in now and len(now) == 2, now
            assert len(now - first) == 1  # the other worker is the one that was there
            workers = now

        # SIGHUP: forwarded, each worker reloads its configuration.
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while log.read_text(errors="replace").count("configuration reloaded") < 2:
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            await asyncio.sleep(0.1)

        # SIGTERM: a clean exit within a few seconds, no worker left behind.
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        took = time.monotonic() - started
        assert took < 10, f"stopping took {took:.1f} s"
        assert not any(alive(pid) for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text(errors="replace")
    assert out.count("smsbot is running on") == 1, out  # one banner, not one per worker
    assert "Traceback" not in out, out
    assert "another starts in" in out  # the supervisor said what it did


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SMSBOT_REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_several_workers_refuse_the_memory_store() -> None:
    done = run_cli("serve", "--workers", "2")
    assert done.returncode == 2
    assert "SMSBOT_REDIS_URL" in done.stderr and "memory store" in done.stderr


def test_several_workers_refuse_demo_mode(redis_server: RedisServer) -> None:
    done = run_cli(
        "serve", "--workers", "2", "--demo", "--demo-force", SMSBOT_REDIS_URL=redis_server.url
    )
    assert done.returncode == 2
    assert "--demo runs one process" in done.stderr


async def test_workers_stop_when_their_supervisor_dies(redis_url: str, tmp_path: Path) -> None:
    async with two_workers(redis_url, tmp_path) as (proc, _, log, workers):
        proc.kill()  # kill -9: nothing forwarded; the workers notice by themselves
        proc.wait()
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            await asyncio.sleep(0.2)
    assert "is gone: stopping" in log.read_text(errors="replace")


def test_a_worker_whose_supervisor_died_before_it_started_stops(
    redis_url: str, tmp_path: Path
) -> None:
    # The parent named on the command line is not this process's parent (it died while the
    # worker was starting, or loading the model): the worker stops rather than serve orphaned.
    log = tmp_path / "worker.log"
    args = ["--worker-index", "1", "--no-banner", "--supervisor-pid", "999999"]
    proc = serve(redis_url, free_port(), log, args=args)
    try:
        assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "is gone: stopping" in log.read_text(errors="replace")


async def test_sigusr2_replaces_every_worker_while_the_port_answers(
    redis_url: str, tmp_path: Path
) -> None:
    """A rolling restart (new code): each worker gets a successor, and is stopped only once
    its successor answers; requests made all along are all answered, replies processed once."""
    async with two_workers(redis_url, tmp_path) as (proc, base, log, before):
        async with fresh_connections() as session:
            r = await session.post(
                base + "/api/accounts",
                json={"accounts": [account(1)], "start": False},
                headers=AUTH,
            )
            assert r.status == 200
            failures: list[str] = []
            answered: set[int] = set()
            sent: list[str] = []
            done = asyncio.Event()

            async def traffic() -> None:
                n = 0
                while not done.is_set():
                    n += 1
                    text = f"第{n}条"
                    body, headers = generic_request(f"roll-{n}", account(1)["phone"], text)
                    try:
                        # At most 60 replies (the transcript shows the last 1,000 audit
                        # entries); /readyz goes on till the end.
                        if n <= 60:
                            async with session.post(
                                base + "/webhooks/generic", data=body, headers=headers
                            ) as r:
                                if r.status != 200:
                                    failures.append(f"{r.status}")
                                else:
                                    sent.append(text)
                        async with session.get(base + "/readyz") as r:
                            answered.add((await r.json())["pid"])
                    except aiohttp.ClientError as exc:
                        failures.append(repr(exc))
                    await asyncio.sleep(0.02)

            load = asyncio.create_task(traffic())
            proc.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 120
            while "rolling restart done" not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                await asyncio.sleep(0.2)
            after = await both_answering(session, base)
            done.set()
            await load
            assert not (after & before), (before, after)  # both replaced
            # "done" is logged when the last old worker is told to stop; it then drains and
            # exits as on SIGTERM (well within its grace), so it may still be leaving here.
            for _ in range(300):  # 30 s
                if not any(alive(pid) for pid in before):
                    break
                await asyncio.sleep(0.1)
            assert not any(alive(pid) for pid in before)
            assert not failures, failures  # the port never went dark
            assert answered & before and answered & after  # served by old and new alike
            assert len(sent) >= 20, len(sent)  # replies kept coming during the restart
            conv: dict[str, object] = {}
            for _ in range(100):
                async with session.get(f"{base}/api/conversations/acc-0001", headers=AUTH) as r:
                    conv = await r.json()
                if len(borrower_texts(conv)) >= len(sent):
                    break
                await asyncio.sleep(0.1)
            assert sorted(borrower_texts(conv)) == sorted(sent)  # each once
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    out = log.read_text(errors="replace")
    assert out.count("smsbot is running on") == 1, out
    assert "Traceback" not in out, out

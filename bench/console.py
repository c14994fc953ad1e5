"""What the agents' console costs with a full queue: N open cases (each a borrower's dispute
handed off through the real pipeline), then the queue (JSON and page) and one case's view
(JSON and page) read repeatedly by a signed-in agent, then the results dashboard by a
supervisor (every account's records and audit read), in process, on the memory store or a
private redis-server (no persistence, temporary directory).

    .venv/bin/python bench/console.py [--cases 1000] [--reads 30] [--store memory|redis|both]

Prints the median and 95th percentile per read. Each live update re-reads the page's live
part, so the queue page's time is also what one screen costs per event it is told of.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from benchredis import start_redis  # bench/benchredis.py (this folder is on sys.path)

from bot.app import create_app
from bot.clock import Clock
from bot.console.agents import add_agent
from bot.context import PIPELINE
from bot.settings import load_settings
from bot.storage.agents import MemoryAgentStore
from bot.storage.base import Store
from bot.storage.memory import MemoryStore
from bot.storage.redis import RedisStore
from bot.transport.inbound import InboundSms
from intents import Understander

KEY = "bench-api-key"
SESSION_KEY = "0Yj5DmnCmhlIxZqJ4sh8W8jnGRJaTz9Rd5tJDyHhN3A="
PASSWORD = "bench password 1"
START = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, a Wednesday


async def timed(n: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


async def run(store: Store, label: str, cases: int, reads: int, nlu: Understander) -> None:
    agents = MemoryAgentStore()
    await add_agent(agents, "li.na", "agent", PASSWORD, START)
    await add_agent(agents, "boss", "supervisor", PASSWORD, START)
    clock = Clock(START - datetime.now(UTC))
    settings = load_settings(api_key=KEY, session_key=SESSION_KEY, redis_url=None)
    app = create_app(settings, store=store, nlu=nlu, agents=agents, clock=clock)
    auth = {"Authorization": f"Bearer {KEY}"}
    async with TestClient(TestServer(app)) as c:
        rows = [
            {
                "id": f"b-{i:06d}",
                "name": "张三",
                "phone": f"+86139{i:08d}",
                "amount_due": "3200.00",
                "days_overdue": 5,
                "due_date": "2026-11-20",
            }
            for i in range(cases)
        ]
        t = time.perf_counter()
        for chunk in range(0, cases, 1000):
            r = await c.post(
                "/api/accounts",
                json={"accounts": rows[chunk : chunk + 1000], "start": True},
                headers=auth,
            )
            result = await r.json()
            assert r.status == 200 and not result.get("errors"), result
        pipeline = c.app[PIPELINE]
        await asyncio.gather(
            *(
                pipeline.receive(
                    InboundSms(
                        provider="generic",
                        msg_id=f"m-{i}",
                        phone=row["phone"],
                        text="这笔钱我根本没借过，你们搞错了",
                        received_at=clock.now(),
                    )
                )
                for i, row in enumerate(rows)
            )
        )
        await pipeline.idle()
        setup_s = time.perf_counter() - t
        r = await c.post("/api/console/login", json={"name": "li.na", "password": PASSWORD})
        assert r.status == 200
        listing = await (await c.get("/api/console/cases")).json()
        assert listing["total"] == cases, listing["total"]
        one = listing["cases"][-1]["case"]["account_id"]

        async def get(path: str) -> None:
            r = await c.get(path)
            assert r.status == 200, r.status
            await r.read()

        figures = {
            "GET /api/console/cases (top 100)": await timed(
                reads, lambda: get("/api/console/cases")
            ),
            "GET /api/console/cases?limit=1000": await timed(
                reads, lambda: get("/api/console/cases?limit=1000")
            ),
            "GET /console (queue page)": await timed(reads, lambda: get("/console")),
            "GET /api/console/cases/{id}": await timed(
                reads, lambda: get(f"/api/console/cases/{one}")
            ),
            "GET /console/cases/{id} (page)": await timed(
                reads, lambda: get(f"/console/cases/{one}")
            ),
        }
        # The results dashboard reads every account's records and audit (bot/reports).
        r = await c.post("/api/console/login", json={"name": "boss", "password": PASSWORD})
        assert r.status == 200
        figures["GET /api/console/dashboard (every account)"] = await timed(
            max(3, reads // 10), lambda: get("/api/console/dashboard")
        )
    print(f"\n{label}: {cases} open cases (set up in {setup_s:.1f} s), {reads} reads each")
    for name, (p50, p95) in figures.items():
        print(f"  {name:44} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--store", choices=["memory", "redis", "both"], default="both")
    args = parser.parse_args()
    nlu = Understander.load()
    if args.store in ("memory", "both"):
        await run(MemoryStore(), "memory store", args.cases, args.reads, nlu)
    if args.store in ("redis", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            proc, url = start_redis(Path(tmp))
            try:
                store = RedisStore.from_url(url)
                try:
                    await run(store, "Redis store", args.cases, args.reads, nlu)
                finally:
                    await store.close()
            finally:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())

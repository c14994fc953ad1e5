"""The store's own Redis client alone: CPU per call on one Redis and on a 3-primary cluster.

Run: ``.venv/bin/python bench/redis_client.py [--calls N] [--repeat R]``. Prints figures;
asserts nothing.

bench/scale.py measures the whole service, where one process's rounds vary by ±10 % with
the machine; this isolates the client (bot/storage/resp.py, bot/storage/resp_cluster.py),
whose share is what the cluster adds. A private ``redis-server`` and a private 3-primary
cluster on loopback (temporary directory, stopped at exit); this process pinned to one
core. 32 tasks issue, each in turn, the three kinds of group a message is made of:

- ``one``: a GET of one account's key (a group on one primary: most of them);
- ``two reads``: a read of a global set and of an account's key together (on a cluster, two
  primaries: the gate's reads);
- ``write, write``: a write to a global index, then one to an account's key (on a cluster the
  second waits for the first's reply: the index-before-script rule of bot.storage.redis).

Per kind: the process's CPU per call (µs) and calls/s, the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import uvloop
from benchredis import start_redis  # bench/ is this script's directory, on the path
from scale import start_cluster

from bot.storage.connect import connection_for
from bot.storage.resp import Connection

TASKS = 32
ACCOUNTS = 2000
KINDS = ("one", "two reads", "write, write")


async def measure(conn: Connection, kind: str, calls: int) -> tuple[float, float]:
    keys = [f"smsbot:{{acc:B{i}}}:account" for i in range(ACCOUNTS)]

    async def task(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(calls // TASKS):
            key = rnd.choice(keys)
            if kind == "one":
                await conn.one("GET", key)
            elif kind == "two reads":
                await conn.call(("SISMEMBER", "smsbot:optout", "x"), ("GET", key))
            else:
                await conn.call(("ZADD", "smsbot:due", "LT", 5, key), ("SET", key, "y" * 200))

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(task(t) for t in range(TASKS)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / calls * 1e6, calls / wall


async def run(urls: list[tuple[str, str]], calls: int, repeat: int) -> None:
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(repeat):  # the topologies in turn, so the machine's drift falls on both
        for name, url in urls:
            conn = connection_for(url)
            await conn.call(
                *(("SET", f"smsbot:{{acc:B{i}}}:account", "x") for i in range(ACCOUNTS))
            )
            for kind in KINDS:
                await measure(conn, kind, calls // 4)  # warm: connections, slot map, caches
                figures.setdefault((name, kind), []).append(await measure(conn, kind, calls))
            await conn.close()
    print(f"{'topology':<10} {'group':<14} {'CPU per call':>13} {'calls/s':>10}")
    for (name, kind), got in figures.items():
        cpu = statistics.median(c for c, _ in got)
        rate = statistics.median(r for _, r in got)
        print(f"{name:<10} {kind:<14} {cpu:>10.1f} µs {rate:>10,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per kind and run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per topology")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="smsbot-client-"))
        proc, single = start_redis(workdir)
        stack.callback(proc.kill)
        cluster, _ = start_cluster(workdir, stack, None)
        os.sched_setaffinity(0, {0})
        print(f"{os.cpu_count()} cores; this process on CPU 0; {TASKS} tasks, {args.calls:,} calls")
        uvloop.run(run([("one Redis", single), ("cluster", cluster)], args.calls, args.repeat))


if __name__ == "__main__":
    main()

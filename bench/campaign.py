"""Campaigns at issue 12's scale, on one process and a private redis-server (no persistence,
temporary directory, killed at exit). Prints figures; asserts nothing about time.

    .venv/bin/python bench/campaign.py [--rows 100000] [--release 20000] [--rate 1000]
                                       [--campaigns 1] [--skip-import]
                                       [--loop serve|asyncio]

1. import: a CSV of ``--rows`` accounts (UTF-8, headers 账户号,姓名,手机号,应还金额,逾期天数,
   到期日; valid mainland mobiles over 15,000 号段) through what ``smsbot campaign import``
   runs: ``read_accounts`` -> ``Campaigns.import_rows`` into the Redis store (accounts upserted,
   campaign membership). Rows/s, seconds, peak RSS (the import runs before the NLU is
   loaded, so the peak is the import's). Target: 100,000 rows in <= 60 s.
2. release, gate and queue: the service in process (``create_app`` on the Redis store, the
   sandbox carrier, a clock at 10:00 Beijing time that runs on in real time, its own
   background release loop every second) starts a campaign of ``--release`` accounts at
   ``--rate`` per second. Sampled once a second, O(1): the campaign's counters and the gate
   steps the store applied (``Store.move`` counted on this store object; the sandbox's send
   is recorded in the gate's own step, so a message past the gate is sent), until every
   account has been released and its first reminder gated. Target: 1,000,000 gated and
   queued in <= 10 min; with fewer accounts the figure for 1,000,000 is extrapolated at the
   measured rate (and says so).
3. Redis memory per idle conversation: ``used_memory`` just before the release and once
   everything has settled, over the conversations started (target <= 2 KB); with
   ``MEMORY USAGE`` of one account's keys (SCAN MATCH on its hash tag) and the mean per key
   kind over a sample of accounts, to show which keys dominate.
4. status: the time of the first campaign's status (``smsbot campaign status`` and
   ``GET /api/campaigns/{id}``: every member read once, a batch at a time) and per member.

One campaign of 1,000,000 in 10 min needs a rate of at least 1,667/s (``--rate 2500``; at
most 10,000/s, bot.campaigns.model); ``--campaigns N`` splits the accounts over N campaigns
released together (N x rate). The machine is shared: besides the wall-clock rate the bench
prints the CPU this process spent per account, and the rate that makes at a whole core.
By default the service runs as ``smsbot serve`` runs it (uvloop, the tuned collector);
``--loop asyncio`` on asyncio's own loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from benchredis import start_redis  # bench/benchredis.py (this folder is on sys.path)

from bot.app import create_app
from bot.campaigns.rows import RowError, read_accounts
from bot.campaigns.service import Campaigns
from bot.clock import Clock
from bot.compliance.gate import Gate
from bot.context import CAMPAIGNS, PIPELINE
from bot.records import QueuedEvent
from bot.serve import new_event_loop, tune_garbage_collector
from bot.settings import load_settings
from bot.storage import keys
from bot.storage.base import Transition
from bot.storage.redis import RedisStore
from bot.storage.resp import RedisConnection
from dialogs.registry import Registry
from intents import Understander

KEY = "bench-api-key"
SESSION_KEY = "0Yj5DmnCmhlIxZqJ4sh8W8jnGRJaTz9Rd5tJDyHhN3A="
START = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, a Wednesday
HEADER = ["账户号", "姓名", "手机号", "应还金额", "逾期天数", "到期日"]
SURNAMES = "王李张刘陈杨黄赵吴周孙徐朱胡郭何高林罗郑"
# Mainland mobile 号段 (first 3 digits) x 500 blocks each (first 7 digits): 15,000 blocks.
PREFIXES = [str(p) for p in (*range(130, 140), 150, 151, 152, *range(155, 160), 176, 177)]
PREFIXES += [str(p) for p in (181, 182, 183, 185, 186, 187, 188, 189, 198, 199)]
BLOCKS = [f"{p}{b:04d}" for p in PREFIXES for b in range(500)]
RELEASE_OFFSET = 50_000_000  # phone/row index of the release accounts: no clash with imports
MEMORY_SAMPLE = 200  # released accounts whose keys are measured one by one


def phone(i: int) -> str:
    """A distinct valid mobile for each i < 150,000,000, consecutive i in different blocks."""
    return BLOCKS[i % len(BLOCKS)] + f"{(i // len(BLOCKS)) % 10_000:04d}"


def write_csv(path: Path, rows: int, first: int, id_prefix: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(HEADER) + "\r\n")
        for k in range(rows):
            i = first + k
            due = date(2026, 1, 1) + timedelta(days=i % 300)
            out.write(
                f"{id_prefix}{i:09d},{SURNAMES[i % 20]}小明,{phone(i)},"
                f"{100 + (i * 37) % 50_000}.{i % 100:02d},{i % 180},{due.isoformat()}\r\n"
            )


# --- redis-server and small readings -------------------------------------------------------


def redis_version() -> str:
    done = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    return done.stdout.split()[2]


def info(reply: bytes) -> dict[str, str]:
    out = {}
    for line in reply.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


async def used_memory(r: RedisConnection) -> int:
    return int(info(await r.one("INFO", "memory"))["used_memory"])


async def redis_cpu(r: RedisConnection) -> float:
    cpu = info(await r.one("INFO", "cpu"))
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def dbsize(r: RedisConnection) -> int:
    return int(await r.one("DBSIZE"))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Cpu:
    """Seconds of CPU this process and redis-server used over a phase."""

    r: RedisConnection
    py0: float = 0.0
    redis0: float = 0.0
    wall0: float = 0.0
    out: dict[str, float] = field(default_factory=dict)

    async def start(self) -> None:
        self.py0, self.redis0, self.wall0 = (
            time.process_time(),
            await redis_cpu(self.r),
            time.perf_counter(),
        )

    async def stop(self) -> str:
        wall = time.perf_counter() - self.wall0
        py = time.process_time() - self.py0
        red = await redis_cpu(self.r) - self.redis0
        return (
            f"CPU: python {py:.1f} s ({py / wall:.0%} of a core),"
            f" redis-server {red:.1f} s ({red / wall:.0%})"
        )


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


# --- 1. import -----------------------------------------------------------------------------


async def _never(account_id: str, event: QueuedEvent, dedup: str | None) -> bool:
    raise RuntimeError("the import does not release")


async def bench_import(url: str, tmp: Path, rows: int, registry: Registry) -> None:
    path = tmp / "accounts-import.csv"
    t = time.perf_counter()
    write_csv(path, rows, 0, "LN")
    print(f"  file: {rows:,} rows, {mib(path.stat().st_size)}, written in", end=" ")
    print(f"{time.perf_counter() - t:.1f} s (not counted)")
    store = RedisStore.from_url(url)
    admin = RedisConnection(url)
    try:
        mem0 = await used_memory(admin)
        cpu = Cpu(admin)
        await cpu.start()
        rss0 = rss_mib()
        # What the CLI does (bot/campaigns/cli.py _import), a progress bar aside. Its start
        # is a year away: the service in part 2 never releases it.
        campaigns = Campaigns(store, _never, registry, Clock(START - datetime.now(UTC)))
        t = time.perf_counter()
        campaign = await campaigns.create(
            "bench-import", "collections", START + timedelta(days=365), 10.0
        )
        errors: list[RowError] = []
        with path.open("rb") as f:
            read = read_accounts(f, filename=path.name, flow="collections")
            report = await campaigns.import_rows(campaign.id, read, on_error=errors.append)
        seconds = time.perf_counter() - t
        used = await cpu.stop()
        mem1 = await used_memory(admin)
        print(
            f"  imported {report.imported:,} ({report.added:,} new), {report.rejected:,} rejected"
            + (f" (first: {report.errors[0]})" if report.errors else "")
        )
        print(
            f"  IMPORT: {seconds:.1f} s total, {report.imported / seconds:,.0f} rows/s"
            f"   [target: 100,000 rows <= 60 s; this run {rows:,} rows]"
        )
        print(f"  peak RSS {rss_mib():.0f} MiB (before the import {rss0:.0f} MiB); {used}")
        print(
            f"  Redis: +{mib(mem1 - mem0)} for {report.imported:,} accounts"
            f" ({(mem1 - mem0) / max(1, report.imported):,.0f} B per imported account)"
        )
    finally:
        await admin.close()
        await store.close()


# --- 2. release, gate, queue; 3. memory ----------------------------------------------------


async def scan(r: RedisConnection, match: str) -> list[str]:
    found: list[str] = []
    cursor = b"0"
    while True:
        cursor, batch = await r.one("SCAN", cursor, "MATCH", match, "COUNT", 20_000)
        found += [k.decode() for k in batch]
        if cursor in (b"0", 0, "0"):
            return sorted(found)


async def memory_usage(r: RedisConnection, key: str) -> int:
    n = await r.one("MEMORY", "USAGE", key, "SAMPLES", 0)
    return int(n or 0)


def kind(key: str, account_id: str) -> str:
    """The account key's suffix with ids taken out (``seen:start``, ``case:<id>`` ...)."""
    return key.removeprefix(keys.ACCOUNT_TAG_PREFIX + account_id + keys.ACCOUNT_TAG_SUFFIX + ":")


async def show_one_account(r: RedisConnection, account_id: str, number: str) -> list[str]:
    tag = keys.ACCOUNT_TAG_PREFIX + account_id + keys.ACCOUNT_TAG_SUFFIX
    own = await scan(r, tag + ":*")
    message_ids = [m.decode() for m in await r.one("HKEYS", f"{tag}:outbound")]
    extra = [keys.PHONE_PREFIX + number, f"{keys.SENDS_PREFIX}{number}}}:sends"]
    extra += [keys.MESSAGE_PREFIX + m for m in message_ids]
    print(f"  one account's keys ({account_id}, {number}), MEMORY USAGE (SAMPLES 0):")
    total = 0
    for key in own + extra:
        if not await r.one("EXISTS", key):
            continue
        size = await memory_usage(r, key)
        ttl = int(await r.one("TTL", key))
        kind_ = (await r.one("TYPE", key)).decode()
        total += size
        ttl_text = f"  expires in {ttl / 86400:.1f} d" if ttl > 0 else ""
        print(f"    {size:6,} B  {kind_:6} {key}{ttl_text}")
    print(f"    {total:6,} B  in all")
    return [kind(k, account_id) for k in own]


async def mean_per_kind(
    r: RedisConnection, sample: list[tuple[str, str]], kinds: list[str]
) -> None:
    """Mean MEMORY USAGE per key kind over sampled accounts: the account's own keys (kinds
    from one account; a key an account lacks counts 0) and its phone's global keys."""
    sums: dict[str, int] = defaultdict(int)
    for account_id, number in sample:
        tag = keys.ACCOUNT_TAG_PREFIX + account_id + keys.ACCOUNT_TAG_SUFFIX
        for k in kinds:
            sums[k] += await memory_usage(r, f"{tag}:{k}")
        sums["{ph:<phone>}:sends (global)"] += await memory_usage(
            r, f"{keys.SENDS_PREFIX}{number}}}:sends"
        )
        sums["phone:<phone> (global)"] += await memory_usage(r, keys.PHONE_PREFIX + number)
    n = len(sample)
    total = sum(sums.values()) / n
    print(f"  mean per key kind over {n} released accounts (MEMORY USAGE):")
    for k, s in sorted(sums.items(), key=lambda kv: -kv[1]):
        print(f"    {s / n:8,.0f} B  {s / n / total:4.0%}  {k}")
    print(f"    {total:8,.0f} B  per account in all (account record and phone index included)")


class GateSteps:
    """Counts the gate's decisions as the store applies them: ``Store.move`` wrapped on this
    one store object (a gate step is a transition out of the outbox, ``expected is None``).
    The sandbox's sent set cannot count: it keeps only the newest 10,000 messages."""

    def __init__(self, store: RedisStore) -> None:
        self.by_state: Counter[str] = Counter()
        self.last_at = 0.0
        move = store.move

        async def counted(t: Transition) -> bool:
            moved = await move(t)
            if moved and t.expected is None:
                self.by_state[t.record.state] += 1
                self.last_at = time.perf_counter()
            return moved

        setattr(store, "move", counted)  # noqa: B010 (an instance attribute, not the method)

    @property
    def gated(self) -> int:
        return sum(self.by_state.values())


def release_accounts(n: int) -> Iterator[tuple[str, str]]:
    for k in range(n):
        i = RELEASE_OFFSET + k
        yield f"RL{i:09d}", "+86" + phone(i)


async def bench_release(
    url: str,
    tmp: Path,
    n: int,
    rate: float,
    n_campaigns: int,
    nlu: Understander,
    serve_like: bool,
) -> None:
    store = RedisStore.from_url(url)
    admin = RedisConnection(url)
    clock = Clock(START - datetime.now(UTC))
    settings = load_settings(api_key=KEY, session_key=SESSION_KEY, redis_url=None)
    app = create_app(settings, store=store, nlu=nlu, clock=clock)
    if serve_like:  # as smsbot serve runs it (its loop is chosen in __main__ below)
        app.on_startup.append(tune_garbage_collector)
    try:
        async with TestClient(TestServer(app)) as c:
            campaigns: Campaigns = c.app[CAMPAIGNS]
            pipeline = c.app[PIPELINE]
            t = time.perf_counter()
            ids: list[str] = []
            for j in range(n_campaigns):  # each filled while paused: released from the baseline
                first, last = n * j // n_campaigns, n * (j + 1) // n_campaigns
                campaign = await campaigns.create(f"bench-release-{j}", "collections", None, rate)
                await campaigns.pause(campaign.id)
                ids.append(campaign.id)
                path = tmp / f"accounts-release-{j}.csv"
                write_csv(path, last - first, RELEASE_OFFSET + first, "RL")
                with path.open("rb") as f:
                    read = read_accounts(f, filename=path.name, flow="collections")
                    report = await campaigns.import_rows(campaign.id, read)
                assert report.added == last - first and not report.rejected, report
            print(
                f"  {n:,} accounts imported into {n_campaigns} paused campaign(s) of"
                f" {rate:,.0f}/s in {time.perf_counter() - t:.1f} s (setup, not counted)"
            )
            steps = GateSteps(store)
            mem_before = await used_memory(admin)
            keys_before = await dbsize(admin)
            cpu = Cpu(admin)
            await cpu.start()
            print(f"  load average at the start of the release: {loadavg()}")
            t0 = time.perf_counter()
            for campaign_id in ids:
                await campaigns.resume(campaign_id)
            released_at: float | None = None
            last_print = t0
            last_change, last_sent = t0, -1
            while True:
                await asyncio.sleep(0.5)
                now = time.perf_counter()
                released = 0
                for campaign_id in ids:
                    got = await store.campaigns.get(campaign_id)
                    assert got is not None
                    released += got.released
                sent = steps.gated
                if released >= n and released_at is None:
                    released_at = now - t0
                if sent != last_sent:
                    last_change, last_sent = now, sent
                if now - last_print >= 10:
                    last_print = now
                    print(
                        f"    {now - t0:6.1f} s  released {released:>9,}  gated {sent:>9,}"
                        f"  ({sent / (now - t0):,.0f}/s; load {loadavg()})"
                    )
                if released >= n and sent >= n:
                    break
                if released_at is not None and now - last_change > 30:
                    print(f"  !! {n - sent:,} released accounts' reminders never passed the gate")
                    break
            done = steps.last_at - t0  # the last gate step, not the sample after it
            py_cpu = time.process_time() - cpu.py0
            used = await cpu.stop()
            released_s = released_at if released_at is not None else done
            per_s = sent / done
            print(f"  the gate's decisions: {dict(steps.by_state)}")
            print(f"  released all {n:,} after {released_s:.1f} s ({n / released_s:,.0f}/s)")
            print(
                f"  RELEASE+GATE+SEND: {sent:,} first reminders gated {done:.1f} s after the"
                f" start: {per_s:,.0f} accounts/s; {used}"
            )
            # On a shared machine the wall-clock rate follows the load; CPU per account less so
            # (measured: 505 µs at load 2.2, 658 µs at load 3).
            per_account_us = py_cpu / sent * 1e6
            print(
                f"  CPU PER ACCOUNT: {per_account_us:,.0f} µs of python (this process) per account"
                f" released, gated and sent: at a whole core {1e6 / per_account_us:,.0f}/s"
            )
            label = "measured" if n >= 1_000_000 else f"EXTRAPOLATED from {n:,}"
            print(
                f"  1,000,000 accounts: {1_000_000 / per_s / 60:.1f} min ({label})"
                f"   [target <= 10 min, i.e. >= 1,667/s]"
            )

            # 3. memory, once everything has settled (drains, sender, timers).
            await pipeline.idle()
            settle = time.perf_counter()
            await asyncio.sleep(2.0)
            await pipeline.idle()
            mem_after = await used_memory(admin)
            keys_after = await dbsize(admin)
            sandbox = await memory_usage(admin, keys.SANDBOX)
            started = sent
            delta = mem_after - mem_before
            print(f"  settled {time.perf_counter() - settle:.1f} s later")
            print(
                f"  MEMORY: used_memory {mib(mem_before)} before the release, {mib(mem_after)}"
                f" settled: +{mib(delta)} for {started:,} conversations started ="
                f" {delta / started:,.0f} B each   [target <= 2 KB = 2,048 B]"
            )
            print(
                f"  of which the sandbox's sent set ({keys.SANDBOX}, capped at its newest 10,000"
                f" messages; not in production): {mib(sandbox)} = {sandbox / started:,.0f} B"
                " each; without it"
                f" {(delta - sandbox) / started:,.0f} B per conversation"
            )
            print(
                f"  keys: {keys_before:,} before, {keys_after:,} after"
                f" (+{(keys_after - keys_before) / started:.2f} per conversation)"
            )
            print("  global keys now:")
            cmp_tag = f"{keys.PREFIX}{{cmp:{ids[0]}}}"
            for key in (
                keys.SANDBOX,
                keys.DUE,
                keys.SEND_QUEUE,
                f"{cmp_tag}:members",
                f"{cmp_tag}:released",
                f"{cmp_tag}:pending",
            ):
                if await admin.one("EXISTS", key):
                    size = await memory_usage(admin, key)
                    print(f"    {mib(size):>11}  {size / started:6,.0f} B/conv.  {key}")
            accounts = list(release_accounts(n))
            one_id, one_phone = accounts[0]
            kinds = await show_one_account(admin, one_id, one_phone)
            sample = random.Random(12).sample(accounts, min(MEMORY_SAMPLE, n))
            await mean_per_kind(admin, sample, kinds)
            # 4. status: an O(members) read (bot.campaigns.status), once, at the end.
            t = time.perf_counter()
            st = await campaigns.status(ids[0])
            took = time.perf_counter() - t
            fields = st.model_dump(mode="json", exclude={"campaign"})
            shown = {k: v for k, v in fields.items() if v not in (0, {}, [], "0", "0.00")}
            print(
                f"  STATUS of {ids[0]} ({st.imported:,} members) once at the end: {took:.1f} s,"
                f" {took / max(st.imported, 1) * 1e6:,.0f} µs a member: {shown}"
            )
            # The same conversations idle weeks later: the phone's send ledger (kept 8 days)
            # and the duplicate claims (30 days) have expired; deleted here to show what stays.
            expiring = [keys.sends(p) for _, p in accounts]
            expiring += [keys.seen(a, "start") for a, _ in accounts]
            before_expiry = await used_memory(admin)
            for i in range(0, len(expiring), 1000):
                await admin.one("DEL", *expiring[i : i + 1000])
            freed = before_expiry - await used_memory(admin)
            idle = (delta - sandbox - freed) / started
            print(
                f"  MEMORY once the 8-day ledger and the 30-day claims have expired: {idle:,.0f} B"
                " per idle conversation (sandbox's set excluded)   [target <= 2,048 B]"
            )
    finally:
        await admin.close()
        await store.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the import file")
    parser.add_argument("--release", type=int, default=20_000, help="accounts released")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="campaign rate, accounts/s (<= 10000)"
    )
    parser.add_argument(
        "--campaigns", type=int, default=1, help="the release split over N campaigns"
    )
    parser.add_argument("--skip-import", action="store_true", help="skip part 1")
    parser.add_argument(
        "--loop",
        choices=("serve", "asyncio"),
        default="serve",
        help="serve: uvloop and the tuned collector, as smsbot serve (default)",
    )
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    print(
        f"bench/campaign.py on {os.cpu_count()} CPUs ({sys.platform}, Python"
        f" {sys.version.split()[0]}), one process + a private redis-server"
        f" ({redis_version()}, no persistence); event loop {args.loop}; load average"
        f" {loadavg()}"
        " (shared machine)"
    )
    print(
        f"measures: 1. import of {args.rows:,} CSV rows"
        f"{' (skipped)' if args.skip_import else ''}; 2. release of {args.release:,} accounts"
        f" in {args.campaigns} campaign(s) at {args.rate:,.0f}/s each through the gate to the"
        " sandbox; 3. Redis memory per conversation"
    )
    settings = load_settings(api_key=KEY, session_key=SESSION_KEY, redis_url=None)
    registry = Registry.load(settings.flows_dir, Gate.load(settings.compliance_file).policy)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        proc, url = start_redis(tmp)
        try:
            if not args.skip_import:
                print(f"\n1. import ({datetime.now(UTC):%H:%M:%S} UTC)")
                await bench_import(url, tmp, args.rows, registry)
            print(f"\n2./3. release, gate and queue; memory ({datetime.now(UTC):%H:%M:%S} UTC)")
            t = time.perf_counter()
            nlu = Understander.load()
            print(f"  NLU loaded in {time.perf_counter() - t:.1f} s")
            await bench_release(
                url, tmp, args.release, args.rate, args.campaigns, nlu, args.loop == "serve"
            )
        finally:
            proc.kill()
            proc.wait(timeout=10)
    print(f"\nload average at the end: {loadavg()}; peak RSS of this process {rss_mib():.0f} MiB")


if __name__ == "__main__":
    arguments = parse_args()
    serve_loop = new_event_loop if arguments.loop == "serve" else None
    with asyncio.Runner(loop_factory=serve_loop) as runner:
        runner.run(main(arguments))

"""Outbound send benchmark: the service on Redis against a fake carrier answering in 200 ms.

Run: ``.venv/bin/python bench/outbound.py [--sends N] [--latency-rate R] [--latency-seconds S]
[--carrier-latency 0.2] [--window W] [--batch B] [--loaders L] [--quick] [--profile FILE]
[--keep]``. Prints figures and whether each target is met; asserts nothing (exit 0 even when a
target is missed).

What runs (loopback only, every process started here and stopped at exit, also on Ctrl-C):

- a private ``redis-server`` on a free port, AOF on (``appendfsync everysec``: what a
  deployment that must not lose a committed send would run), in a temporary directory;
- the fake carrier (``tests/outbound/fakecarrier.py``: Twilio's API, Basic auth checked,
  answering each send after ``--carrier-latency`` s) in its own process (``--fake-carrier``
  mode of this script, on uvloop), with a small stats endpoint next to it: messages accepted,
  provider calls in flight (received, not yet answered) sampled every 10 ms, and each accepted
  message's arrival time, our message id (Twilio's ``StatusCallback`` ``ref``) and phone;
- the service, ``smsbot serve`` on that Redis with ``SMSBOT_PROVIDER=twilio`` pointed at the
  fake, as its own process pinned to one core; redis-server, the fake and this process (the
  load generator) share the other core (as bench/inbound.py, whose helpers this reuses).

Sends come from starting conversations: ``POST /api/accounts`` with ``"start": true`` (the first
reminder of each account). Every account has its own phone number, so the frequency caps never
defer, and its borrower lives in a zone where it is late morning (``daytime_zone``), so the
compliance gate sends at once whatever the hour.

1. throughput: N accounts (``--sends``, default 100,000) in batches of 250 (``--batch``; 43 KB,
   far under the 256 KiB body limit, which 1,000 rows would also fit), 16 requests at a time
   (``--loaders``). Why not fewer, larger requests: the API starts a batch's rows one after the
   other, three Redis round trips each, so one request's intake is bound by round-trip time on
   the busy service (measured: 4 requests of 1,000 rows took in about 400 accounts/s and let
   the sender starve for seconds, which the figure then blamed on the send path). The loader
   keeps at most ``--window`` accounts (default 10,000) requested but not yet sent: far more
   than the 200 the target asks to have in flight, so the sender never waits for work (the
   report shows the backlog's minimum), but bounded, so the service's memory series measures
   what a send leaves behind rather than a queue of 100,000 pending drains (``--window 0``:
   load as fast as the API takes them).
   Figures: sends/s at the fake between the 10th and the 90th percentile of the arrivals (the
   sustained middle; ramp-up and the tail left out) and the slowest whole seconds in it,
   provider calls in flight (median of the fake's 10 ms samples in that window, and the
   maximum of the run), the service's RSS every 10,000 sends (``--rss-every``; flat: at most
   3 MB or 3 % of growth after the first sample, by when the service's bounded caches are full),
   CPU per send of the service (from /proc, in the same window: it includes loading the accounts
   through the API, which is part of starting a conversation) and the CPU of the other core's
   processes (a saturated other core would cap the figure). The raw series are written to
   ``phase1.json`` in the run's directory (kept with ``--keep``);
2. latency with no backlog: after phase 1 has fully drained, open loop, one account per request
   at ``--latency-rate`` (20/s) for ``--latency-seconds`` (20 s). "Commit" is the message's
   ``created_at`` from ``GET /api/conversations/{id}``: the time of the event that produced it,
   here the API's start, so the figure covers queue, drain, dialog step, commit, gate step,
   claim and the call. The gate step's audit entry (stamped right after the commit, under the
   same lock) is reported too: the send path alone. "Provider call" is the fake's ``Sent.at``,
   stamped when the request has been read and its auth checked, *before* the carrier latency is
   slept (so nothing is subtracted). Both clocks are this machine's wall clock. The per-message
   times go to ``phase2.json``, and the Redis commands meanwhile are printed per account: on a
   store of 100,000 accounts the service's recovery loop (a SCAN of the keyspace every 30 s)
   shows there, and as the slow messages' cluster in time.

At the end: every started account's first reminder reached the fake exactly once (counted by
our message id and by phone; a sample of accounts checked against the API, every one of the
latency phase), and the service log has no ERROR or Traceback.

``--profile FILE`` samples the service with py-spy (``.venv/bin/pip install py-spy``) during the
sustained part of phase 1 and prints where its CPU goes; py-spy slows the service, so the rates
of such a run are not the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from inbound import (
    API_KEY,
    Backlog,
    Figures,
    accepts,
    account_rows,
    answers_ping,
    cores,
    cpu_seconds,
    daytime_zone,
    free_port,
    http,
    in_workdir,
    percentile,
    redis_commands_line,
    spawn,
    start_profiler,
    stop,
    stop_profiler,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TWILIO_FROM = "+15550000000"
BATCH = 250  # accounts per POST /api/accounts (about 43 KB of JSON; 1,000 is 170 KB)
BODY_LIMIT = 256 * 1024
POLL_S = 0.05
STALL_S = 60.0  # no send for this long: give up waiting
TARGET_RATE = 1000.0
TARGET_INFLIGHT = 200
Timeline = list[tuple[float, int, int]]  # (time, calls in flight, messages accepted)


# --- the fake carrier (its own process: ``--fake-carrier STATS_PORT LATENCY``) -------------


def run_fake_carrier(stats_port: int, latency_s: float) -> None:
    from bot.serve import new_event_loop

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(serve_fake_carrier(stats_port, latency_s))


async def serve_fake_carrier(stats_port: int, latency_s: float) -> None:
    from aiohttp import web

    from tests.outbound.fakecarrier import FakeCarrier

    class CountingCarrier(FakeCarrier):
        """The fake, unchanged, plus: calls in flight (received, not yet answered), answers
        by HTTP status; and the per-request copies the carrier tests compare (``seen``)
        dropped, which would grow by a few KB per call."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.inflight = 0
            self.max_inflight = 0
            self.statuses: Counter[str] = Counter()

        async def _twilio(self, request: web.Request) -> web.Response:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            try:
                response = await super()._twilio(request)
            finally:
                self.inflight -= 1
                self.seen.clear()
            self.statuses[str(response.status)] += 1
            return response

    fake = CountingCarrier(latency_s=latency_s)
    base_url = await fake.start()
    timeline: Timeline = []

    async def sample() -> None:
        while True:
            timeline.append((time.time(), fake.inflight, len(fake.sent)))
            await asyncio.sleep(0.01)

    def page(request: web.Request) -> tuple[int, int]:
        offset = int(request.query.get("offset", "0"))
        return offset, offset + int(request.query.get("limit", "20000"))

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "base_url": base_url,
                "accepted": len(fake.sent),
                "inflight": fake.inflight,
                "max_inflight": fake.max_inflight,
                "statuses": dict(fake.statuses),
            }
        )

    async def arrivals(request: web.Request) -> web.Response:
        start, end = page(request)
        rows = [(s.message_id, s.phone, s.at.timestamp()) for s in fake.sent[start:end]]
        return web.json_response({"rows": rows})

    async def samples(request: web.Request) -> web.Response:
        start, end = page(request)
        return web.json_response({"rows": timeline[start:end]})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/arrivals", arrivals)
    app.router.add_get("/timeline", samples)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", stats_port).start()
    sampler = asyncio.create_task(sample())
    try:
        await asyncio.Event().wait()  # until terminated
    finally:
        sampler.cancel()


@dataclass(frozen=True)
class Arrival:
    message_id: str | None
    phone: str
    at: float  # epoch seconds: when the provider call reached the fake


class Fake:
    """The bench's client of the fake carrier's stats endpoint."""

    def __init__(self, session: Any, url: str) -> None:
        self.session = session
        self.url = url

    async def _get(self, path: str, **query: int) -> Any:
        async with self.session.get(self.url + path, params=query) as r:
            r.raise_for_status()
            return await r.json()

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._get("/stats")
        return data

    async def _all(self, path: str, offset: int) -> list[Any]:
        rows: list[Any] = []
        while True:
            got = (await self._get(path, offset=offset + len(rows), limit=20000))["rows"]
            rows += got
            if len(got) < 20000:
                return rows

    async def arrivals(self, offset: int = 0) -> list[Arrival]:
        return [Arrival(m, p, float(at)) for m, p, at in await self._all("/arrivals", offset)]

    async def timeline(self) -> Timeline:
        return [(float(t), int(n), int(a)) for t, n, a in await self._all("/timeline", 0)]


# --- the processes -------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Rig:
    """What runs, and where."""

    base_url: str  # the service
    service: subprocess.Popen[bytes]
    redis: subprocess.Popen[bytes]
    fake: subprocess.Popen[bytes]
    fake_stats_url: str
    carrier_url: str
    service_log: Path
    redis_url: str
    workdir: Path
    where: str
    client_core: int | None


def start_rig(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> Rig:
    from tests.outbound.fakecarrier import TWILIO_SID, TWILIO_TOKEN

    server_core, client_core = cores()
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    redis_port = free_port()
    redis_log = workdir / "redis.log"
    # fmt: off
    redis = spawn(
        [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(workdir),
         "--daemonize", "no"],
        redis_log, client_core,
    )
    # fmt: on
    stack.callback(stop, redis)
    wait_until(lambda: answers_ping(redis_port), redis, "redis-server", redis_log)

    stats_port = free_port()
    fake_log = workdir / "fake.log"
    fake_cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--fake-carrier",
        str(stats_port),
        str(args.carrier_latency),
    ]
    fake = spawn(fake_cmd, fake_log, client_core)
    stack.callback(stop, fake)
    wait_until(lambda: accepts(stats_port), fake, "the fake carrier", fake_log)
    stats_url = f"http://127.0.0.1:{stats_port}"
    status, stats = http("GET", stats_url + "/stats")
    if status != 200:
        raise SystemExit(f"the fake carrier's stats endpoint answered {status}: {stats}")
    carrier_url: str = stats["base_url"]

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSBOT_")}
    env.update(
        SMSBOT_CONFIG=str(workdir / "no-config.yaml"),  # this run's settings only
        SMSBOT_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        SMSBOT_API_KEY=API_KEY,
        SMSBOT_PUBLIC_URL=base_url,
        SMSBOT_HOST="127.0.0.1",
        SMSBOT_PORT=str(port),
        SMSBOT_PROVIDER="twilio",
        SMSBOT_TWILIO_ACCOUNT_SID=TWILIO_SID,
        SMSBOT_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        SMSBOT_TWILIO_FROM=TWILIO_FROM,
        SMSBOT_TWILIO_API_URL=carrier_url,
    )
    smsbot = Path(sys.executable).parent / "smsbot"  # the interpreter running this bench
    cmd = [str(smsbot), "serve"] if smsbot.exists() else [sys.executable, "-m", "bot.cli", "serve"]
    service_log = workdir / "service.log"
    service = spawn(cmd, service_log, server_core, env)
    stack.callback(stop, service)
    wait_until(
        lambda: http("GET", base_url + "/readyz")[0] == 200, service, "the service", service_log
    )
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})
    where = (
        f"service on CPU {server_core}; redis-server (AOF everysec), fake carrier and load "
        f"generator on CPU {client_core}"
        if server_core is not None
        else "not pinned (one core)"
    )
    return Rig(
        base_url,
        service,
        redis,
        fake,
        stats_url,
        carrier_url,
        service_log,
        f"redis://127.0.0.1:{redis_port}/0",
        workdir,
        where,
        client_core,
    )


# --- phase 1: throughput -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """The bench's view every POLL_S: the fake's counts and every process's CPU so far."""

    t: float
    accepted: int
    inflight: int
    requested: int  # accounts in load requests sent so far (the API starts them as it reads)
    started: int  # accounts the API's answers said it started
    service_cpu: float
    redis_cpu: float
    fake_cpu: float
    own_cpu: float


@dataclass
class Throughput:
    sends: int = 0  # accounts started
    load_seconds: float = 0.0  # first request sent to the last one answered
    done_seconds: float | None = None  # first request sent to the last send answered
    samples: list[Sample] = field(default_factory=list)
    rss: list[tuple[int, float]] = field(default_factory=list)  # (sends, MB)
    arrivals: list[Arrival] = field(default_factory=list)
    timeline: Timeline = field(default_factory=list)
    max_inflight: int = 0
    load_errors: list[str] = field(default_factory=list)
    redis_commands: Counter[str] = field(default_factory=Counter)  # INFO commandstats delta


async def post_accounts(
    session: Any, base_url: str, rows: Sequence[dict[str, Any]]
) -> tuple[int, str | None]:
    """Accounts started, or an error."""
    body = json.dumps({"accounts": list(rows), "start": True}).encode()
    if len(body) > BODY_LIMIT:
        raise SystemExit(f"a batch of {len(rows)} accounts is {len(body)} bytes: too large")
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    try:
        async with session.post(base_url + "/api/accounts", data=body, headers=headers) as r:
            text = await r.text()
            if r.status != 200:
                return 0, f"HTTP {r.status}: {text[:200]}"
            data = json.loads(text)
            if data["errors"]:
                return int(data["started"]), f"row errors: {data['errors'][:3]}"
            return int(data["started"]), None
    except Exception as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def sample(rig: Rig, stats: dict[str, Any], requested: int, started: int) -> Sample:
    return Sample(
        time.time(),
        int(stats["accepted"]),
        int(stats["inflight"]),
        requested,
        started,
        cpu_seconds(rig.service.pid),
        cpu_seconds(rig.redis.pid),
        cpu_seconds(rig.fake.pid),
        time.process_time(),
    )


async def throughput(
    rig: Rig, session: Any, fake: Fake, rows: list[dict[str, Any]], args: argparse.Namespace
) -> Throughput:
    """Loads every account (a bounded backlog, see the module's docstring) and watches the
    fake until each has been sent."""
    fig = Throughput()
    batches = iter([rows[i : i + args.batch] for i in range(0, len(rows), args.batch)])
    # requested: accounts in load requests sent so far (the API starts them while it reads
    # the batch, before it answers); started: as its answers said.
    state = {"accepted": 0, "started": 0, "requested": 0}
    loading = True
    marks = iter(range(args.rss_every, len(rows) + 1, args.rss_every))
    next_mark = next(marks, None)
    fig.rss.append((0, rss_mb(rig.service.pid)))
    profiler: subprocess.Popen[bytes] | None = None
    profiled = False
    polled = asyncio.Event()
    t0 = time.perf_counter()

    async def loader() -> None:
        for batch in batches:
            while args.window and state["requested"] - state["accepted"] + len(batch) > args.window:
                polled.clear()
                await polled.wait()  # the fake's next count
            state["requested"] += len(batch)
            started, error = await post_accounts(session, rig.base_url, batch)
            state["started"] += started
            if error:
                fig.load_errors.append(error)

    async def load_all() -> None:
        nonlocal loading
        await asyncio.gather(*(loader() for _ in range(args.loaders)))
        fig.load_seconds = time.perf_counter() - t0
        loading = False

    redis = Backlog(rig.redis_url)  # bench/inbound.py's Redis probe: INFO commandstats
    commands0 = await redis.command_stats()
    load = asyncio.create_task(load_all())
    last_progress = time.perf_counter()
    try:
        while True:
            stats = await fake.stats()
            s = sample(rig, stats, state["requested"], state["started"])
            fig.samples.append(s)
            if s.accepted > state["accepted"]:
                last_progress = time.perf_counter()
            state["accepted"] = s.accepted
            polled.set()
            while next_mark is not None and s.accepted >= next_mark:
                fig.rss.append((next_mark, rss_mb(rig.service.pid)))
                next_mark = next(marks, None)
            if args.profile and not profiled and s.accepted >= len(rows) // 10:
                profiled = True  # once: from 10 % of the sends to 90 %
                profiler = await asyncio.to_thread(
                    start_profiler, rig.service.pid, Path(args.profile), rig.client_core
                )
            if profiler is not None and s.accepted >= len(rows) * 9 // 10:
                await asyncio.to_thread(stop_profiler, profiler)
                profiler = None
            if not loading and s.accepted >= state["started"]:
                fig.done_seconds = time.perf_counter() - t0
                break
            if time.perf_counter() - last_progress > STALL_S:
                break  # the report says how many never arrived
            if load.done() and load.exception() is not None:
                break
            await asyncio.sleep(POLL_S)
    finally:
        if profiler is not None:
            await asyncio.to_thread(stop_profiler, profiler)
        if not load.done():
            load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
    fig.sends = state["started"]
    fig.redis_commands = await redis.command_stats()
    fig.redis_commands.subtract(commands0)
    await redis.close()
    stats = await fake.stats()
    fig.max_inflight = int(stats["max_inflight"])
    fig.arrivals = await fake.arrivals()
    fig.timeline = await fake.timeline()
    return fig


def nearest(samples: Sequence[Sample], t: float) -> Sample:
    return min(samples, key=lambda s: abs(s.t - t))


def slowest(fig: Throughput, full: Sequence[int], t10: float, first: float) -> str:
    """The three slowest whole seconds of the sustained window, with what else happened."""
    parts = []
    for sec in sorted(range(len(full)), key=full.__getitem__)[:3]:
        at = t10 + sec
        inflight = [k for t, k, _ in fig.timeline if at <= t < at + 1] or [0]
        a, b = nearest(fig.samples, at), nearest(fig.samples, at + 1)
        busy = (b.service_cpu - a.service_cpu) / (b.t - a.t) if b.t > a.t else float("nan")
        parts.append(
            f"+{at - first:.0f} s: {full[sec]} sends, in flight median "
            f"{statistics.median(inflight):.0f}, backlog {a.requested - a.accepted:,}, "
            f"service core {busy:.0%}"
        )
    return "; ".join(parts)


def save(fig: Throughput, path: Path) -> None:
    """The raw figures of phase 1 (kept with ``--keep``)."""
    data = {
        "arrivals": [a.at for a in fig.arrivals],
        "timeline": fig.timeline,
        "samples": [list(vars(s).values()) for s in fig.samples],
        "sample_fields": list(Sample.__dataclass_fields__),
        "rss": fig.rss,
    }
    path.write_text(json.dumps(data))


def rss_verdict(series: Sequence[tuple[int, float]]) -> tuple[str, bool | None]:
    """Growth after the first mark (caches fill within the first 10k: their capacity is a few
    thousand entries), and the least-squares slope in bytes per send."""
    points = [(n, mb) for n, mb in series if n > 0][1:] or [p for p in series if p[0] > 0]
    if len(points) < 2:
        return "too few points to judge (fewer than three RSS samples)", None
    n0, mb0 = points[0]
    n1, mb1 = points[-1]
    xs = [n for n, _ in points]
    ys = [mb * 1024 * 1024 for _, mb in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    growth = mb1 - mb0
    flat = growth <= max(3.0, 0.03 * mb0)
    return (
        f"{growth:+.1f} MB from {n0:,} to {n1:,} sends ({growth / mb0:+.1%}); "
        f"slope {slope:+.0f} bytes per send",
        flat,
    )


def report_throughput(rig: Rig, fig: Throughput, args: argparse.Namespace) -> dict[str, Any]:
    met: dict[str, Any] = {}
    save(fig, rig.workdir / "phase1.json")
    print(f"\nphase 1, throughput: {fig.sends:,} accounts started", flush=True)
    if fig.load_errors:
        print(f"  load errors: {len(fig.load_errors)}, e.g. {fig.load_errors[0]}")
    ats = sorted(a.at for a in fig.arrivals)
    n = len(ats)
    if n < 20:
        print("  too few sends arrived to measure")
        return met
    lo, hi = n // 10, n * 9 // 10 - 1
    t10, t90 = ats[lo], ats[hi]
    rate = (hi - lo) / (t90 - t10) if t90 > t10 else float("nan")
    per_second = Counter(int(t - t10) for t in ats[lo : hi + 1])
    full = [per_second[s] for s in range(int(t90 - t10))]  # whole seconds only
    done = f"{fig.done_seconds:.1f} s" if fig.done_seconds is not None else "unfinished"
    print(
        f"  loaded through the API in {fig.load_seconds:.1f} s "
        f"({fig.sends / fig.load_seconds if fig.load_seconds else 0:,.0f} accounts/s, "
        f"window {args.window or 'unbounded'}); all sent after {done}"
    )
    seconds = (
        f"; per whole second min {min(full)}, median {statistics.median(full):.0f}, max {max(full)}"
        if full
        else ""
    )
    met["rate"] = rate >= TARGET_RATE
    print(
        f"  sends/s at the fake, sustained middle (arrivals 10 %..90 %, {t90 - t10:.1f} s): "
        f"{rate:,.0f}{seconds}   (target ≥ {TARGET_RATE:,.0f}: "
        f"{'met' if met['rate'] else 'NOT met'})"
    )
    if full:
        print(f"  slowest whole seconds (from the first send): {slowest(fig, full, t10, ats[0])}")
    window = [k for t, k, _ in fig.timeline if t10 <= t <= t90]
    if window:
        med, top = statistics.median(window), max(window)
        met["inflight"] = med >= TARGET_INFLIGHT
        print(
            f"  provider calls in flight (fake, 10 ms samples in that window): median {med:.0f}, "
            f"max {top}; max of the run {fig.max_inflight}   (target ≥ {TARGET_INFLIGHT}: "
            f"{'met' if met['inflight'] else 'NOT met'})"
        )
        middle = [s for s in fig.samples if t10 <= s.t <= t90]
        if middle:
            asked = [s.requested - s.accepted for s in middle]
            ready = [max(0, s.started - s.accepted) for s in middle]
            print(
                f"  backlog meanwhile, accounts not yet sent: in load requests sent "
                f"median {statistics.median(asked):,.0f} (min {min(asked):,}); of which the API "
                f"had answered (surely started) median {statistics.median(ready):,.0f} "
                f"(min {min(ready):,})"
            )
    a, b = nearest(fig.samples, t10), nearest(fig.samples, t90)
    sends = b.accepted - a.accepted
    span = b.t - a.t
    if sends > 0 and span > 0:
        print(
            f"  CPU per send in that window (service, API load included): "
            f"{(b.service_cpu - a.service_cpu) / sends * 1e6:,.0f} µs; "
            f"service core busy {(b.service_cpu - a.service_cpu) / span:.0%}"
        )
        other = (
            (b.redis_cpu - a.redis_cpu) + (b.fake_cpu - a.fake_cpu) + (b.own_cpu - a.own_cpu)
        ) / span
        print(
            f"  other core: redis-server {(b.redis_cpu - a.redis_cpu) / span:.0%}, fake carrier "
            f"{(b.fake_cpu - a.fake_cpu) / span:.0%}, load generator "
            f"{(b.own_cpu - a.own_cpu) / span:.0%} = {other:.0%} busy; redis-server "
            f"{(b.redis_cpu - a.redis_cpu) / sends * 1e6:,.0f} µs per send"
        )
    first, last = fig.samples[0], fig.samples[-1]
    if last.accepted:
        print(
            f"  whole phase: service CPU {last.service_cpu - first.service_cpu:.1f} s = "
            f"{(last.service_cpu - first.service_cpu) / last.accepted * 1e6:,.0f} µs per send"
        )
    print(
        "  " + redis_commands_line(Figures(acked=last.accepted, redis_commands=fig.redis_commands))
    )
    print(f"  service RSS every {args.rss_every:,} sends (MB):")
    line = ", ".join(f"{k // 1000}k {mb:.0f}" for k, mb in fig.rss)
    print(f"    {line}")
    verdict, flat = rss_verdict(fig.rss)
    met["memory"] = flat
    print(
        f"  memory: {verdict}   (target flat, growth ≤ max(3 MB, 3 %): "
        f"{ {True: 'met', False: 'NOT met', None: 'not judged'}[flat] })",
        flush=True,
    )
    return met


# --- phase 2: latency with no backlog ------------------------------------------------------------


@dataclass
class Latency:
    rows: list[dict[str, Any]]
    acks: list[float] = field(default_factory=list)
    failed: int = 0
    late_ms: float = 0.0
    commit_to_call: list[float] = field(default_factory=list)
    gate_to_call: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # (created_at, gate step, provider call) per message, epoch seconds: kept in phase2.json
    times: list[tuple[float, float | None, float]] = field(default_factory=list)
    redis_commands: Counter[str] = field(default_factory=Counter)  # INFO commandstats delta


async def wait_accepted(fake: Fake, at_least: int, within: float) -> int:
    deadline = time.perf_counter() + within
    while True:
        accepted = int((await fake.stats())["accepted"])
        if accepted >= at_least or time.perf_counter() > deadline:
            return accepted
        await asyncio.sleep(POLL_S)


async def conversation(session: Any, base_url: str, account_id: str) -> dict[str, Any] | None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with session.get(f"{base_url}/api/conversations/{account_id}", headers=headers) as r:
        if r.status != 200:
            return None
        data: dict[str, Any] = await r.json()
        return data


async def latency(
    rig: Rig,
    session: Any,
    fake: Fake,
    rows: list[dict[str, Any]],
    rate: float,
) -> Latency:
    fig = Latency(rows)
    before = int((await fake.stats())["accepted"])
    redis = Backlog(rig.redis_url)
    commands0 = await redis.command_stats()
    loop = asyncio.get_running_loop()

    async def one(row: dict[str, Any], at: float) -> None:
        started, error = await post_accounts(session, rig.base_url, [row])
        if started == 1 and error is None:
            fig.acks.append(loop.time() - at)
        else:
            fig.failed += 1
            fig.problems.append(f"{row['id']}: {error or 'not started'}")

    tasks: list[asyncio.Task[None]] = []
    start = loop.time() + 0.05
    for i, row in enumerate(rows):
        at = start + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            fig.late_ms = max(fig.late_ms, -delay * 1e3)
        tasks.append(asyncio.create_task(one(row, at)))
    await asyncio.gather(*tasks)
    await wait_accepted(fake, before + len(rows) - fig.failed, 30.0)
    fig.redis_commands = await redis.command_stats()
    fig.redis_commands.subtract(commands0)
    await redis.close()
    arrived = {a.message_id: a for a in await fake.arrivals(before)}

    sem = asyncio.Semaphore(8)

    async def measure(row: dict[str, Any]) -> None:
        async with sem:
            conv = await conversation(session, rig.base_url, row["id"])
        if conv is None or not conv["messages"]:
            fig.problems.append(f"{row['id']}: no message")
            return
        msg = conv["messages"][0]
        hit = arrived.get(msg["id"])
        if hit is None:
            fig.problems.append(f"{row['id']}: message {msg['id']} ({msg['state']}) not at fake")
            return
        created = datetime.fromisoformat(msg["created_at"]).timestamp()
        fig.commit_to_call.append(hit.at - created)
        gates = [
            e
            for e in conv["transcript"]
            if e["kind"] == "gate" and e["detail"].get("message_id") == msg["id"]
        ]
        gated = datetime.fromisoformat(gates[0]["at"]).timestamp() if gates else None
        if gated is not None:
            fig.gate_to_call.append(hit.at - gated)
        fig.times.append((created, gated, hit.at))

    await asyncio.gather(*(measure(row) for row in rows))
    return fig


def report_latency(fig: Latency, rate: float, seconds: float) -> None:
    print(
        f"\nphase 2, latency with no backlog: {len(fig.rows)} accounts at {rate:g}/s for "
        f"{seconds:g} s, one per request (generator behind schedule at worst "
        f"{fig.late_ms:.1f} ms; {fig.failed} failed requests)"
    )

    def row(label: str, values: Sequence[float]) -> None:
        cells = "  ".join(
            f"{name} {percentile(values, q) * 1e3:7.2f}"
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        )
        print(f"  {label:<44} {cells} ms   (n={len(values)})")

    row("commit (created_at) -> provider call", fig.commit_to_call)
    row("gate step (after commit) -> provider call", fig.gate_to_call)
    row("POST /api/accounts acknowledged", fig.acks)
    print(
        "  (target: the issue asks for the p99 commit -> provider call under no backlog; it "
        "names no number)"
    )
    line = redis_commands_line(Figures(acked=len(fig.rows), redis_commands=fig.redis_commands))
    print("  " + line.replace("(throughput phase; ", "(this phase, background loops included; "))
    for problem in fig.problems[:5]:
        print(f"  problem: {problem}")


# --- the end: exactly once, logs -----------------------------------------------------------------


async def check_exactly_once(
    rig: Rig,
    session: Any,
    fake: Fake,
    started_rows: Sequence[dict[str, Any]],
    sample_size: int,
) -> list[str]:
    arrivals = await fake.arrivals()
    by_id = Counter(a.message_id for a in arrivals)
    by_phone = Counter(a.phone for a in arrivals)
    phones = {r["phone"] for r in started_rows}
    missing = [p for p in phones if p not in by_phone]
    twice_phone = [p for p, k in by_phone.items() if k > 1]
    twice_id = [m for m, k in by_id.items() if k > 1]
    strangers = [p for p in by_phone if p not in phones]
    no_ref = by_id.get(None, 0)
    lines = [
        f"fake carrier: {len(arrivals):,} messages accepted for {len(started_rows):,} started "
        f"accounts; {len(missing)} accounts never reached it, {len(twice_phone)} reached it "
        f"more than once, {len(twice_id)} message ids sent more than once, {no_ref} without "
        f"our id, {len(strangers)} to unknown numbers"
    ]
    ok = not (missing or twice_phone or twice_id or strangers or no_ref)
    sample = list(started_rows)[:: max(1, len(started_rows) // sample_size)]
    sem = asyncio.Semaphore(8)
    bad: list[str] = []

    async def one(row: dict[str, Any]) -> None:
        async with sem:
            conv = await conversation(session, rig.base_url, row["id"])
        msgs = conv["messages"] if conv else []
        if len(msgs) != 1 or msgs[0]["state"] != "sent" or by_id[msgs[0]["id"]] != 1:
            summary = [(m["id"], m["state"], by_id[m["id"]]) for m in msgs]
            bad.append(f"{row['id']}: {summary}")

    await asyncio.gather(*(one(r) for r in sample))
    lines.append(
        f"API: {len(sample) - len(bad)}/{len(sample)} sampled accounts have exactly one "
        "message, state sent, whose id reached the fake exactly once"
    )
    lines += [f"  {b}" for b in bad[:5]]
    ok = ok and not bad
    lines.append(f"exactly once: {'yes' if ok else 'NO'}")
    return lines


def log_problems(log: Path) -> tuple[list[str], int]:
    """(ERROR/CRITICAL/Traceback lines, WARNING count) in the service's log."""
    lines = log.read_text(errors="replace").splitlines()
    errors = [
        line
        for line in lines
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
    ]
    return errors, sum(1 for line in lines if " WARNING " in line)


# --- the profile -------------------------------------------------------------------------------

# Self time: the innermost frame naming one of these.
SELF_AREAS = (
    ("redis client and store (redis/, hiredis, bot/storage)", ("redis/", "hiredis",
                                                               "bot/storage/")),
    ("pydantic (models, JSON)", ("pydantic/", "pydantic_core/")),
    ("dialog engine (dialogs, transitions)", ("dialogs/", "transitions/")),
    ("compliance gate (bot/compliance)", ("bot/compliance/",)),
    ("aiohttp client (carrier calls)", ("aiohttp/client", "aiohttp/connector",
                                        "bot/outbound/carriers/")),
    ("aiohttp server, parsers, other HTTP", ("aiohttp/", "yarl/", "multidict/", "bot/api.py",
                                             "bot/app.py")),
    ("send path (bot/outbound: gate step, sender)", ("bot/outbound/",)),
    ("pipeline and other bot code", ("bot/",)),
)  # fmt: skip
# Inclusive: samples whose stack passes through this frame (the coroutine being stepped).
INCLUSIVE = (
    ("POST /api/accounts (loading the accounts)", "post_accounts (bot/api.py"),
    ("drain (Pipeline.drain: lock, step, commit, gate step)", "drain (bot/pipeline.py"),
    ("  dialog step and commit (Pipeline._process)", "_process (bot/pipeline.py"),
    ("  gate step (Dispatcher.flush)", "flush (bot/outbound/dispatch.py"),
    ("sender (Sender._work: claim, call, settle)", "_work (bot/outbound/sender.py"),
    ("  carrier call (TwilioCarrier.send_outbound)", "send_outbound (bot/outbound/carriers"),
    ("  settle (Sender._settle)", "_settle (bot/outbound/sender.py"),
    ("background loops (timers, recovery, sender poll)", "run_loops (bot/loops.py"),
    ("  sender poll", "run (bot/outbound/sender.py"),
)
_ROOTS = ("smsbot", "bot/cli.py", "bot/serve.py", "aiohttp/web.py")
_FRAME = re.compile(r"^(.*) \((.*?):\d+\)$")


def profile_summary(path: Path) -> list[str]:
    """Where the service's on-CPU samples went (py-spy's collapsed stacks)."""
    areas: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack.startswith("<module>") or not count_text.isdigit():
            continue  # other threads (the default executor)
        count = int(count_text)
        total += count
        frames = stack.split(";")
        area = "event loop (uvloop, C) and other stdlib"
        for name in reversed(frames):
            m = _FRAME.match(name)
            file = m.group(2) if m else name
            if file in _ROOTS:
                continue  # uvloop's own work shows as its caller's frame
            hit = next((a for a, prefixes in SELF_AREAS if file.startswith(prefixes)), None)
            if hit is not None:
                area = hit
                break
        areas[area] += count
        innermost = re.sub(r":\d+\)$", ")", frames[-1])
        if innermost.startswith("run_app (aiohttp/web.py"):
            innermost = "event loop (uvloop's C code under run_app)"
        functions[innermost] += count
        for label, needle in INCLUSIVE:
            if any(needle in f for f in frames):
                inclusive[label] += count
    if not total:
        return ["profile: no samples"]
    lines = [f"profile of the service during phase 1 ({total} samples, {path}):"]
    lines.append("  self time by area:")
    lines += [f"    {n / total:6.1%}  {area}" for area, n in areas.most_common()]
    lines.append("  inclusive (coroutine being run):")
    lines += [f"    {inclusive[label] / total:6.1%}  {label}" for label, _ in INCLUSIVE]
    lines.append("  hottest functions (self):")
    lines += [f"    {n / total:6.1%}  {fn}" for fn, n in functions.most_common(15)]
    return lines


# --- the run -------------------------------------------------------------------------------------


async def measured(rig: Rig, args: argparse.Namespace) -> None:
    import aiohttp

    zone = daytime_zone()
    latency_count = max(1, int(args.latency_rate * args.latency_seconds))
    rows = account_rows(args.sends + latency_count, zone)
    bulk, paced = rows[: args.sends], rows[args.sends :]
    print(
        f"outbound benchmark: {args.sends:,} accounts started in batches of {args.batch}, then "
        f"{latency_count} at {args.latency_rate:g}/s; carrier latency "
        f"{args.carrier_latency * 1e3:.0f} ms; borrowers' zone {zone} (late morning there)\n"
        f"{rig.where}",
        flush=True,
    )
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=32), timeout=timeout
    ) as session:
        fake = Fake(session, rig.fake_stats_url)
        fig = await throughput(rig, session, fake, bulk, args)
        met = report_throughput(rig, fig, args)
        if args.profile:
            print("\n".join(profile_summary(Path(args.profile))), flush=True)
        # No backlog: everything of phase 1 answered, and a moment for the settles.
        await wait_accepted(fake, fig.sends, STALL_S)
        await asyncio.sleep(1.0)
        lat = await latency(rig, session, fake, paced, args.latency_rate)
        (rig.workdir / "phase2.json").write_text(json.dumps(sorted(lat.times)))
        report_latency(lat, args.latency_rate, args.latency_seconds)
        print("\ncorrectness:")
        checks = await check_exactly_once(
            rig, session, fake, [*bulk, *paced], sample_size=args.check_sample
        )
        stats = await fake.stats()
    for line in checks:
        print(f"  {line}")
    print(f"  fake carrier answers by HTTP status: {stats['statuses']}")
    rss = rss_mb(rig.service.pid)
    stop(rig.service)
    errors, warnings = log_problems(rig.service_log)
    print(
        f"  service log: {len(errors)} ERROR/Traceback lines, {warnings} warnings "
        f"(RSS at the end {rss:.0f} MB)"
    )
    for line in errors[:5]:
        print(f"    {line[:200]}")
    print("\ntargets:")
    for key, label in (
        ("rate", f"≥ {TARGET_RATE:,.0f} sends/s sustained"),
        ("inflight", f"≥ {TARGET_INFLIGHT} provider calls in flight"),
        ("memory", "memory flat over the sends"),
    ):
        verdict = {True: "met", False: "NOT met", None: "not measured"}[met.get(key)]
        print(f"  {label}: {verdict}")
    if lat.commit_to_call:
        print(
            f"  p99 commit -> provider call with no backlog: "
            f"{percentile(lat.commit_to_call, 0.99) * 1e3:.1f} ms (reported; no target number)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sends", type=int, default=100_000, help="accounts started, phase 1")
    parser.add_argument("--latency-rate", type=float, default=20.0, help="phase 2, accounts/s")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="phase 2 length")
    parser.add_argument(
        "--carrier-latency", type=float, default=0.2, help="the fake's answer time, seconds"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=10_000,
        help="phase 1: at most this many accounts started but not yet sent (0: unbounded)",
    )
    parser.add_argument("--batch", type=int, default=BATCH, help="accounts per load request")
    parser.add_argument("--loaders", type=int, default=16, help="load requests at a time")
    parser.add_argument("--rss-every", type=int, default=10_000, help="RSS sample, sends")
    parser.add_argument(
        "--check-sample", type=int, default=200, help="phase 1 accounts checked by the API"
    )
    parser.add_argument("--quick", action="store_true", help="a small run (smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument(
        "--profile", metavar="FILE", help="py-spy the service during phase 1 (collapsed stacks)"
    )
    parser.add_argument(
        "--fake-carrier", nargs=2, metavar=("PORT", "LATENCY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.fake_carrier is not None:
        run_fake_carrier(int(args.fake_carrier[0]), float(args.fake_carrier[1]))
        return
    if args.quick:
        args.sends, args.latency_rate, args.latency_seconds = 3000, 10.0, 3.0
        args.rss_every, args.window, args.check_sample = 1000, 4000, 50
    if min(args.sends, args.batch, args.loaders, args.rss_every) < 1 or args.window < 0:
        parser.error(
            "--sends, --batch, --loaders and --rss-every must be at least 1, --window not negative"
        )
    if args.latency_rate <= 0 or args.latency_seconds <= 0 or args.carrier_latency < 0:
        parser.error("--latency-rate and --latency-seconds must be positive")

    def body(workdir: Path, stack: contextlib.ExitStack) -> None:
        rig = start_rig(args, workdir, stack)
        asyncio.run(measured(rig, args))

    in_workdir("smsbot-bench-out-", args.keep, body)


if __name__ == "__main__":
    main()

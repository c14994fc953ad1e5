"""Inbound webhook benchmark: the service on Redis against a bare aiohttp endpoint.

Run: ``.venv/bin/python bench/inbound.py [--rounds R] [--messages N] [--borrowers B]
[--rate 200] [--seconds S] [--load aiohttp|wrk] [--aof]``. Prints figures; asserts nothing.

What runs (loopback only, every process started here and stopped at exit, also on Ctrl-C):

- a private ``redis-server`` on a free port (no persistence, temporary directory);
- the service, ``smsbot serve`` on that Redis, as a separate process pinned to one core;
  (R + 1) × B borrowers are loaded through ``POST /api/accounts`` with ``"start": false``;
- on the same core, a bare aiohttp app with one route that parses the same form
  (``await request.post()``) and answers the same empty TwiML (idle while the service runs);
- this process is the load generator (aiohttp client, bounded connections), pinned to the
  other core, together with redis-server.

Requests are signed Twilio webhooks (form-encoded, valid ``X-Twilio-Signature``, a distinct
MessageSid each), carrying held-out borrower replies (``intents/data/heldout.yaml``) from
borrowers drawn at random; both targets get exactly the same requests.

1. throughput, in R rounds: each round sends N messages closed-loop over C connections,
   first to the bare endpoint, right after to the service, to B borrowers of the round's own
   (so every round is the same work); acknowledged msgs/s, and for the service the end-to-end
   rate (until every account's queue and outbox in Redis are empty, i.e. every message was
   understood, stepped, committed and sent). This machine's speed drifts by ±10 % within
   minutes, so a ratio is only taken between the two neighbouring runs of one round, and
   the median of the rounds is the figure;
2. latency: open loop at a fixed rate (default 200 msg/s), each request's latency counted
   from its scheduled send time (so a stalled server is not hidden by a stalled client).

``--load wrk`` drives the throughput phase with wrk instead (bench/wrkload.py; the Debian
package): it costs far less per request than the aiohttp client, which saturates before the
bare endpoint does. ``--aof`` runs redis-server with AOF (``appendfsync everysec``), as in
production.

Server CPU per message (from /proc) is printed next to the rates: it does not depend on
which side of the loopback was the bottleneck. So are the CPU other processes used meanwhile
(a busy machine skews every figure) and the Redis commands per message (INFO commandstats).

``--profile FILE`` also samples the service with py-spy during the first round's throughput
phase (``.venv/bin/pip install py-spy``), keeps the collapsed stacks in FILE (flamegraph input) and
prints the share of each area (Redis client, HTTP, NLU, dialog engine, ...). py-spy pauses the
service for each sample, so the rates of such a run are lower; the shares are what it is for.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import wrkload  # noqa: E402  (bench/wrkload.py: this script's directory is on the path)

API_KEY = "bench-api-key"
TWILIO_TOKEN = "bench-twilio-token"
WEBHOOK_PATH = "/webhooks/twilio"
# The same acknowledgement as bot.transport.twilio.TWIML_EMPTY.
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
START_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

Request = tuple[bytes, dict[str, str]]


# --- the bare endpoint (runs in its own process: ``--bare-server PORT``) ------------------


def run_bare_server(port: int) -> None:
    from aiohttp import web

    from bot.serve import new_event_loop

    async def inbound(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text=TWIML_EMPTY, content_type="text/xml")

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, inbound)
    # The same event loop as ``smsbot serve``: the comparison is of the work, not the loop.
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_event_loop()
    )


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spawn(
    cmd: Sequence[str], log: Path, core: int | None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A child in its own session (Ctrl-C reaches only us; we stop it), pinned to ``core``."""
    pin: Callable[[], None] | None = (
        functools.partial(os.sched_setaffinity, 0, {core}) if core is not None else None
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            list(cmd),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pin,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start:\n{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready within {START_TIMEOUT_S:.0f} s ({log})")
        time.sleep(0.05)


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {API_KEY}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine used so far (every core)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / CLK_TCK


def start_profiler(pid: int, out: Path, core: int | None) -> subprocess.Popen[bytes]:
    """py-spy sampling the service (on-CPU samples only), collapsed stacks into ``out``."""
    venv = ROOT / ".venv" / "bin" / "py-spy"
    binary = str(venv) if venv.exists() else shutil.which("py-spy")
    if binary is None:
        raise SystemExit("--profile needs py-spy (.venv/bin/pip install py-spy)")
    # fmt: off
    cmd = [binary, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
           "-o", str(out)]
    # fmt: on
    proc = spawn(cmd, out.with_suffix(".log"), core)
    time.sleep(1.0)  # attached before the phase starts
    return proc


def stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Where the service's time goes, by the innermost frame that names one of these (so the event
# loop's own frames under a redis-py call count as Redis, under aiohttp as HTTP).
PROFILE_AREAS = (
    ("metrics and logs (bot/telemetry, prometheus_client, structlog)",
     ("bot/telemetry/", "prometheus_client/", "structlog/")),
    ("redis client (bot/storage/resp.py, redis.py)", ("redis/", "hiredis", "bot/storage/re")),
    ("pydantic (models, JSON)", ("pydantic/", "pydantic_core/")),
    ("NLU (intents, jieba, opencc)", ("intents/", "jieba/", "opencc/")),
    ("dialog engine (dialogs, transitions)", ("dialogs/", "transitions/")),
    ("compliance gate (bot/compliance)", ("bot/compliance/",)),
    ("HTTP (aiohttp, form, signature)", ("aiohttp/", "yarl/", "multidict/", "bot/webhooks.py",
                                         "bot/transport/", "bot/app.py", "hmac.py")),
    ("pipeline and other bot code", ("bot/",)),
)  # fmt: skip
_PROFILE_ROOTS = ("bot/cli.py", "bot/serve.py", "aiohttp/web.py")


def profile_summary(path: Path) -> list[str]:
    """Share of the event-loop thread's samples per area (py-spy's collapsed stacks)."""
    import re

    frame = re.compile(r".* \((.*?):\d+\)$")
    areas: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.startswith("<module>"):
            continue  # other threads (the default executor, idle)
        area = "event loop, tasks, other stdlib"
        for name in reversed(stack.split(";")):
            m = frame.match(name)
            file = m.group(1) if m else name
            if file in _PROFILE_ROOTS:
                continue
            hit = next((a for a, prefixes in PROFILE_AREAS if file.startswith(prefixes)), None)
            if hit is not None:
                area = hit
                break
        areas[area] += int(count)
    total = sum(areas.values())
    if not total:
        return ["profile: no samples"]
    lines = [f"profile of the service, round 1's throughput phase ({total} samples, {path}):"]
    lines += [f"  {n / total:6.1%}  {area}" for area, n in areas.most_common()]
    return lines


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- requests ------------------------------------------------------------------------------


def phone_of(i: int) -> str:
    return f"+86138{i:08d}"


def account_id(i: int) -> str:
    return f"bench-{i:06d}"


def daytime_zone(now: datetime | None = None) -> str:
    """A whole-hour zone where it is now late morning. The borrowers live there, so the
    compliance gate sends the replies at once whatever the hour the bench runs at: at night
    in Shanghai it would defer them all, and that is other work (a deferral, then a timer)."""
    hour = (now or datetime.now(UTC)).hour
    offset = (11 - hour + 12) % 24 - 12  # UTC offset in hours, -12 … +11
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"  # POSIX signs: Etc/GMT-8 is UTC+8


def account_rows(borrowers: int, zone: str) -> list[dict[str, Any]]:
    return [
        {
            "id": account_id(i),
            "name": "张三",
            "phone": phone_of(i),
            "amount_due": "3200.00",
            "days_overdue": 5,
            "due_date": "2026-11-24",
            "tz": zone,
        }
        for i in range(borrowers)
    ]


def twilio_request(public_url: str, phone: str, text: str) -> Request:
    sid = "SM" + uuid.uuid4().hex
    # The fields Twilio posts for an inbound SMS, in its order.
    form = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": text,
        "FromCountry": "CN",
        "To": "+15550000000",
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "ApiVersion": "2010-04-01",
    }
    signed = public_url + WEBHOOK_PATH + "".join(k + form[k] for k in sorted(form))
    mac = hmac.new(TWILIO_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": base64.b64encode(mac).decode(),
    }
    return urlencode(form).encode(), headers


@dataclass
class Plan:
    """Which borrower gets each message, per phase; the same for both targets.

    Borrowers come in blocks of ``--borrowers``: block r is round r's, the last block is the
    warm-up's and the latency phase's. Every round sends the same texts to the same relative
    borrowers of its own fresh block, so the rounds are the same work."""

    warmup: list[tuple[int, str]]
    rounds: list[list[tuple[int, str]]]
    latency: list[tuple[int, str]]

    def sent_to(self) -> Counter[int]:
        every = [m for r in self.rounds for m in r] + self.warmup + self.latency
        return Counter(b for b, _ in every)


def make_plan(args: argparse.Namespace, texts: Sequence[str]) -> Plan:
    def draw(n: int, block: int, seed: int) -> list[tuple[int, str]]:
        rng = random.Random(seed)
        base = block * args.borrowers
        return [(base + rng.randrange(args.borrowers), rng.choice(texts)) for _ in range(n)]

    warm = args.rounds  # the block after the rounds'
    return Plan(
        draw(args.warmup, warm, args.seed + 1),
        [draw(args.messages, r, args.seed) for r in range(args.rounds)],
        draw(max(1, int(args.rate * args.seconds)), warm, args.seed + 2),
    )


def sign_all(public_url: str, messages: Sequence[tuple[int, str]]) -> list[Request]:
    return [twilio_request(public_url, phone_of(b), text) for b, text in messages]


# --- load generation -------------------------------------------------------------------------


@dataclass
class Figures:
    acked: int = 0
    failed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    ack_seconds: float = 0.0
    e2e_seconds: float | None = None
    server_cpu_s: float = 0.0  # during the throughput phase, until processed
    cpu_window_s: float = 0.0  # how long that was
    other_cpu_s: float = 0.0  # used meanwhile by processes other than ours (noise)
    redis_commands: Counter[str] = field(default_factory=Counter)  # INFO commandstats delta
    sent: int = 0  # outbound SMS the service sent (sandbox), all phases
    redis_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    latency_failed: int = 0
    latency_late_ms: float = 0.0  # worst lag of the generator behind its schedule
    backlog_after_latency_s: float | None = None

    def ack_rate(self) -> float:
        return self.acked / self.ack_seconds if self.ack_seconds else 0.0

    def e2e_rate(self) -> float | None:
        if self.e2e_seconds is None:
            return None
        return self.acked / self.e2e_seconds


async def post(session: Any, url: str, req: Request, statuses: Counter[str]) -> bool:
    import aiohttp

    body, headers = req
    try:
        async with session.post(url, data=body, headers=headers) as r:
            await r.read()
            statuses[str(r.status)] += 1
            return r.status == 200  # type: ignore[no-any-return]
    except (aiohttp.ClientError, TimeoutError) as exc:
        statuses[type(exc).__name__] += 1
        return False


async def closed_loop(
    session: Any, url: str, reqs: Sequence[Request], concurrency: int, fig: Figures
) -> None:
    """Every request, as fast as the target answers, over ``concurrency`` connections."""
    it = iter(reqs)

    async def worker() -> None:
        for req in it:
            if await post(session, url, req, fig.statuses):
                fig.acked += 1
            else:
                fig.failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def open_loop(
    session: Any, url: str, reqs: Sequence[Request], rate: float, fig: Figures
) -> None:
    """One request every 1/rate s whatever the answers; latency from the scheduled time."""
    loop = asyncio.get_running_loop()
    statuses: Counter[str] = Counter()

    async def one(req: Request, at: float) -> None:
        if await post(session, url, req, statuses):
            fig.latencies.append(loop.time() - at)
        else:
            fig.latency_failed += 1

    tasks: list[asyncio.Task[None]] = []
    start = loop.time() + 0.05
    for i, req in enumerate(reqs):
        at = start + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            fig.latency_late_ms = max(fig.latency_late_ms, -delay * 1e3)
        tasks.append(asyncio.create_task(one(req, at)))
    await asyncio.gather(*tasks)


class Backlog:
    """Whether the service still has work: any account's queue or outbox non-empty in Redis,
    or a message not yet handed to the carrier (the senders' index)."""

    def __init__(self, redis_url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(redis_url)
        self._keys: list[str] = []

    def watch(self, borrowers: Sequence[int]) -> None:
        """The accounts to look at (the current phase's block: one EXISTS stays cheap)."""
        from bot.storage import keys

        self._keys = [keys.queue(account_id(i)) for i in borrowers]
        self._keys += [keys.outbox(account_id(i)) for i in borrowers]

    async def pending(self) -> int:
        """Accounts with work left, plus messages the senders have not settled yet (the
        senders' index is shared: the whole service's, which is this phase's)."""
        from bot.storage import keys

        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(*self._keys)
            pipe.zcard(keys.SEND_QUEUE)
            waiting, sending = await pipe.execute()
        return int(waiting) + int(sending)

    async def wait_empty(self, within: float) -> float | None:
        """perf_counter() when nothing is pending, or None after ``within`` seconds."""
        deadline = time.perf_counter() + within
        while await self.pending():
            if time.perf_counter() > deadline:
                return None
            await asyncio.sleep(0.02)
        return time.perf_counter()

    async def command_stats(self) -> Counter[str]:
        """Calls so far per Redis command (``name``) and µs spent (``name:usec``)."""
        info = await self._redis.info("commandstats")
        stats: Counter[str] = Counter()
        for key, value in info.items():
            name = key.removeprefix("cmdstat_")
            stats[name] = int(value["calls"])
            stats[name + ":usec"] = int(value["usec"])
        return stats

    async def sent(self) -> int:
        """Outbound messages the sandbox provider recorded (capped at its list's length)."""
        from bot.storage import keys

        n: int = await self._redis.zcard(keys.SANDBOX)
        return n

    async def close(self) -> None:
        await self._redis.aclose()


@dataclass
class Target:
    """One server under test: where it listens, its pid, and (for the service) Redis."""

    url: str
    pid: int
    redis_pid: int | None = None
    backlog: Backlog | None = None


async def throughput(
    session: Any,
    target: Target,
    reqs: Sequence[Request],
    args: argparse.Namespace,
    *,
    profile: Path | None = None,
    wrk_file: Path | None = None,
) -> Figures:
    """A fixed number of messages, closed loop (the aiohttp client, or wrk reading
    ``wrk_file``); for the service, until all are processed."""
    fig = Figures()
    backlog = target.backlog
    profiler = start_profiler(target.pid, profile, args.client_core) if profile else None
    stats0 = await backlog.command_stats() if backlog is not None else Counter()
    cpu0 = cpu_seconds(target.pid)
    busy0 = machine_busy_seconds()
    rcpu0 = cpu_seconds(target.redis_pid) if target.redis_pid else 0.0
    ccpu0 = time.process_time()
    started = time.perf_counter()
    if wrk_file is None:
        await closed_loop(session, target.url + WEBHOOK_PATH, reqs, args.concurrency, fig)
        fig.ack_seconds = time.perf_counter() - started
        fig.client_cpu_s = time.process_time() - ccpu0
    else:
        res = await wrkload.run(
            target.url,
            WEBHOOK_PATH,
            wrk_file,
            wrk_file.with_suffix(".lua"),
            threads=args.wrk_threads,
            connections=args.concurrency,
            rounds=1 if backlog is not None else args.bare_repeat,
            core=args.client_core,
        )
        fig.acked = res.requests - res.bad_status
        fig.failed = res.bad_status + res.socket_errors
        fig.statuses.update({"non-2xx": res.bad_status, "socket errors": res.socket_errors})
        fig.ack_seconds = res.seconds
        fig.client_cpu_s = res.client_cpu_s
    if backlog is not None:
        done = await backlog.wait_empty(DRAIN_TIMEOUT_S)
        fig.e2e_seconds = done - started if done is not None else None
    fig.server_cpu_s = cpu_seconds(target.pid) - cpu0
    fig.cpu_window_s = time.perf_counter() - started
    fig.redis_cpu_s = (cpu_seconds(target.redis_pid) - rcpu0) if target.redis_pid else 0.0
    if backlog is not None:
        stats = await backlog.command_stats()
        stats.subtract(stats0)
        fig.redis_commands = stats
        # the benchmark's own probes are not the service's work
        probes = stats["exists:usec"] + stats["info:usec"]
        fig.redis_cpu_s = max(0.0, fig.redis_cpu_s - probes / 1e6)
    ours = fig.server_cpu_s + fig.redis_cpu_s + (time.process_time() - ccpu0)
    if wrk_file is not None:
        ours += fig.client_cpu_s  # wrk is a child process
    fig.other_cpu_s = max(0.0, machine_busy_seconds() - busy0 - ours)
    if profiler is not None:
        stop_profiler(profiler)
    return fig


async def latency(session: Any, target: Target, reqs: Sequence[Request], rate: float) -> Figures:
    """Open loop at a fixed rate; for the service, then how long its backlog took."""
    fig = Figures()
    await open_loop(session, target.url + WEBHOOK_PATH, reqs, rate, fig)
    if target.backlog is not None:
        t0 = time.perf_counter()
        done = await target.backlog.wait_empty(DRAIN_TIMEOUT_S)
        fig.backlog_after_latency_s = done - t0 if done is not None else None
        fig.sent = await target.backlog.sent()
    return fig


@dataclass
class Results:
    rounds: list[tuple[Figures, Figures]]  # (service, bare) throughput, per round
    latency: tuple[Figures, Figures]  # (service, bare)


async def measure(
    svc: Target,
    bare: Target,
    plan: Plan,
    signed: dict[str, list[Request]],
    args: argparse.Namespace,
    wrk_files: dict[int, Path],
) -> Results:
    """Warm both up; then per round the bare endpoint and right after it the service, each
    on the round's requests (the machine's speed drifts: a ratio is taken between neighbours);
    then the latency phase of each."""
    import aiohttp

    assert svc.backlog is not None
    timeout = aiohttp.ClientTimeout(total=30)
    rounds: list[tuple[Figures, Figures]] = []
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=timeout
        ) as s_svc,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=timeout
        ) as s_bare,
    ):
        warm = {b for b, _ in plan.warmup + plan.latency}
        svc.backlog.watch(sorted(warm))
        for session, target in ((s_svc, svc), (s_bare, bare)):
            await closed_loop(
                session, target.url + WEBHOOK_PATH, signed["warmup"], args.concurrency, Figures()
            )
        await svc.backlog.wait_empty(DRAIN_TIMEOUT_S)
        for r, messages in enumerate(plan.rounds):
            svc.backlog.watch(sorted({b for b, _ in messages}))
            reqs = signed[f"round{r}"]
            wrk_file = wrk_files.get(r)
            b_fig = await throughput(s_bare, bare, reqs, args, wrk_file=wrk_file)
            profile = Path(args.profile) if args.profile and r == 0 else None
            s_fig = await throughput(s_svc, svc, reqs, args, profile=profile, wrk_file=wrk_file)
            rounds.append((s_fig, b_fig))
            print(f"  round {r + 1}: {round_line(s_fig, b_fig)}", flush=True)
        svc.backlog.watch(sorted(warm))
        lat_svc = await latency(s_svc, svc, signed["latency"], args.rate)
        lat_bare = await latency(s_bare, bare, signed["latency"], args.rate)
    return Results(rounds, (lat_svc, lat_bare))


def ratios(s_fig: Figures, b_fig: Figures) -> tuple[float, float]:
    """(end-to-end / bare throughput, bare / service CPU per message)."""
    e2e = s_fig.e2e_rate()
    rate = e2e / b_fig.ack_rate() if e2e is not None and b_fig.ack_rate() else float("nan")
    cpu = (
        (b_fig.server_cpu_s / b_fig.acked) / (s_fig.server_cpu_s / s_fig.acked)
        if s_fig.server_cpu_s and b_fig.server_cpu_s and s_fig.acked and b_fig.acked
        else float("nan")
    )
    return rate, cpu


def round_line(s_fig: Figures, b_fig: Figures) -> str:
    rate, cpu = ratios(s_fig, b_fig)
    e2e = s_fig.e2e_rate()
    return (
        f"service {e2e or float('nan'):.0f} msg/s end to end, bare {b_fig.ack_rate():.0f} msg/s "
        f"-> {rate:.1%}; CPU per message {s_fig.server_cpu_s / max(1, s_fig.acked) * 1e6:.0f} "
        f"vs {b_fig.server_cpu_s / max(1, b_fig.acked) * 1e6:.0f} µs -> {cpu:.1%}"
    )


# --- the run ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cores() -> tuple[int | None, int | None]:
    """(server core, load-generator core), or no pinning on a one-core machine."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return available[0], available[-1]


def load_accounts(base_url: str, borrowers: int, zone: str) -> None:
    rows = account_rows(borrowers, zone)
    for i in range(0, len(rows), 500):
        status, body = http(
            "POST", base_url + "/api/accounts", {"accounts": rows[i : i + 500], "start": False}
        )
        if status != 200 or body.get("errors"):
            raise SystemExit(f"loading accounts failed: {status} {body}")


def transcript_check(base_url: str, plan: Plan) -> str:
    """Sampled borrowers: inbound replies in the transcript vs replies sent."""
    sent = plan.sent_to()
    sample = sorted(sent)[:: max(1, len(sent) // 5)][:5]
    good = 0
    for b in sample:
        status, conv = http("GET", f"{base_url}/api/conversations/{account_id(b)}")
        if status == 200:
            got = sum(1 for e in conv["transcript"] if e["kind"] == "inbound")
            good += got == sent[b]
    return f"{good}/{len(sample)} sampled borrowers have every reply in their transcript"


def log_problems(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if " ERROR " in line or " WARNING " in line]


def run(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> None:
    from intents.data import load_heldout

    server_core, client_core = cores()
    args.client_core = client_core
    texts = [e.text for e in load_heldout().examples]
    plan = make_plan(args, texts)

    # redis-server, next to the load generator (the server core stays the service's own)
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    redis_port = free_port()
    redis_log = workdir / "redis.log"
    # fmt: off
    redis_proc = spawn(
        [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes" if args.aof else "no", "--appendfsync", "everysec",
         "--dir", str(workdir), "--daemonize", "no"],
        redis_log, client_core,
    )
    # fmt: on
    stack.callback(stop, redis_proc)
    wait_until(lambda: answers_ping(redis_port), redis_proc, "redis-server", redis_log)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"

    # the service
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSBOT_")}
    env.update(
        SMSBOT_CONFIG=str(workdir / "no-config.yaml"),  # this run's settings only
        SMSBOT_REDIS_URL=redis_url,
        SMSBOT_API_KEY=API_KEY,
        SMSBOT_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        SMSBOT_PUBLIC_URL=base_url,
        SMSBOT_HOST="127.0.0.1",
        SMSBOT_PORT=str(port),
    )
    smsbot = Path(sys.executable).parent / "smsbot"  # the interpreter running this bench
    cmd = [str(smsbot), "serve"] if smsbot.exists() else [sys.executable, "-m", "bot.cli", "serve"]
    service_log = workdir / "service.log"
    service = spawn(cmd, service_log, server_core, env)
    stack.callback(stop, service)
    wait_until(
        lambda: http("GET", base_url + "/readyz")[0] == 200, service, "the service", service_log
    )
    zone = daytime_zone()
    load_accounts(base_url, args.borrowers * (args.rounds + 1), zone)

    # the bare endpoint, same core, same requests; idle while the service is measured
    bare_port = free_port()
    bare_log = workdir / "bare.log"
    bare_cmd = [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(bare_port)]
    bare_proc = spawn(bare_cmd, bare_log, server_core)
    stack.callback(stop, bare_proc)
    wait_until(lambda: accepts(bare_port), bare_proc, "the bare endpoint", bare_log)

    if client_core is not None:
        os.sched_setaffinity(0, {client_core})
    signed = {
        "warmup": sign_all(base_url, plan.warmup),
        "latency": sign_all(base_url, plan.latency),
    }
    wrk_files: dict[int, Path] = {}
    for r, messages in enumerate(plan.rounds):
        signed[f"round{r}"] = sign_all(base_url, messages)
        if args.load == "wrk":
            wrk_files[r] = workdir / f"round{r}.requests"
            wrkload.write_requests(wrk_files[r], signed[f"round{r}"])
            wrkload.write_script(wrk_files[r].with_suffix(".lua"))
    load = (
        f"wrk, {args.wrk_threads} threads (the bare endpoint gets each round's requests "
        f"{args.bare_repeat} times over)"
        if args.load == "wrk"
        else "aiohttp client"
    )
    persistence = "AOF, fsync every second" if args.aof else "none"
    where = (
        f"service and bare endpoint on CPU {server_core}; load generator and redis-server on "
        f"CPU {client_core}"
        if server_core is not None
        else "not pinned (one core)"
    )
    print(
        f"inbound benchmark: {args.rounds} rounds of {args.messages} messages (+{args.warmup} "
        f"warm-up), each round to {args.borrowers} fresh borrowers; {len(texts)} held-out texts, "
        f"{args.concurrency} connections; latency at {args.rate:.0f} msg/s for "
        f"{args.seconds:.0f} s; borrowers' zone {zone} (late morning there)\n{where}\n"
        f"load generator: {load}; redis-server persistence: {persistence}",
        flush=True,
    )

    async def measured() -> Results:
        backlog = Backlog(redis_url)
        try:
            svc = Target(base_url, service.pid, redis_proc.pid, backlog)
            bare = Target(f"http://127.0.0.1:{bare_port}", bare_proc.pid)
            return await measure(svc, bare, plan, signed, args, wrk_files)
        finally:
            await backlog.close()

    results = asyncio.run(measured())
    rss = peak_rss_mb(service.pid)
    check = transcript_check(base_url, plan)
    stop(service)
    stop(bare_proc)
    report(args, results, rss, check, log_problems(service_log))


def redis_commands_line(fig: Figures) -> str:
    """Commands per acknowledged message in the throughput phase, probes left out."""
    if not fig.acked:
        return "redis commands per message: -"
    calls = {
        name: n
        for name, n in fig.redis_commands.items()
        if not name.endswith(":usec") and name not in ("exists", "info") and n > 0
    }
    top = sorted(calls.items(), key=lambda kv: -kv[1])
    listed = ", ".join(f"{name} {n / fig.acked:.2f}" for name, n in top[:30])
    total = sum(calls.values()) / fig.acked
    return (
        f"redis commands per message (throughput phase; commands run inside scripts count "
        f"too): {total:.1f} = {listed}"
    )


def report(
    args: argparse.Namespace, results: Results, rss: float, check: str, problems: list[str]
) -> None:
    def row(label: str, a: str, b: str) -> None:
        print(f"  {label:<40} {a:>18} {b:>18}")

    def per_msg(cpu: float, count: int) -> str:
        return f"{cpu / count * 1e6:.0f} µs" if count else "-"

    def util(cpu: float, seconds: float | None) -> str:
        return f"{cpu / seconds:.0%}" if seconds else "-"

    # The table shows the median round (by throughput ratio); the ratios below use every round.
    by_ratio = sorted(results.rounds, key=lambda sb: ratios(*sb)[0])
    svc, bare = by_ratio[len(by_ratio) // 2]
    lat_svc, lat_bare = results.latency
    e2e = svc.e2e_rate()
    print(f"\nthe median round ({len(results.rounds)} rounds):")
    row("", "service (Redis)", "bare aiohttp")
    row("acknowledged (closed loop)", f"{svc.ack_rate():.0f} msg/s", f"{bare.ack_rate():.0f} msg/s")
    row(
        "end-to-end processed",
        f"{e2e:.0f} msg/s" if e2e is not None else f"unfinished {DRAIN_TIMEOUT_S:.0f}s",
        "-",
    )
    row("failed requests", f"{svc.failed}", f"{bare.failed}")
    row(
        "server CPU per message",
        per_msg(svc.server_cpu_s, svc.acked),
        per_msg(bare.server_cpu_s, bare.acked),
    )
    row("redis-server CPU per message", per_msg(svc.redis_cpu_s, svc.acked), "-")
    row(
        "server core busy (throughput phase)",
        util(svc.server_cpu_s, svc.cpu_window_s),
        util(bare.server_cpu_s, bare.cpu_window_s),
    )
    row(
        "load generator busy (sending)",
        util(svc.client_cpu_s, svc.ack_seconds),
        util(bare.client_cpu_s, bare.ack_seconds),
    )
    row(
        "other processes' CPU meanwhile",
        util(svc.other_cpu_s, svc.cpu_window_s),
        util(bare.other_cpu_s, bare.cpu_window_s),
    )
    for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        row(
            f"latency {label} at {args.rate:.0f} msg/s",
            f"{percentile(lat_svc.latencies, q) * 1e3:.2f} ms",
            f"{percentile(lat_bare.latencies, q) * 1e3:.2f} ms",
        )
    row("latency-phase failures", f"{lat_svc.latency_failed}", f"{lat_bare.latency_failed}")
    row(
        "generator behind schedule (worst)",
        f"{lat_svc.latency_late_ms:.1f} ms",
        f"{lat_bare.latency_late_ms:.1f} ms",
    )
    print()
    rates = [ratios(s, b)[0] for s, b in results.rounds]
    cpus = [ratios(s, b)[1] for s, b in results.rounds]
    listed = ", ".join(f"{r:.1%}" for r in rates)
    print(
        f"end-to-end / bare throughput: {percentile(rates, 0.5):.1%} median of rounds "
        f"({listed})   (target ≥ 15%)"
    )
    if any(b.ack_seconds and b.client_cpu_s / b.ack_seconds > 0.9 for _, b in results.rounds):
        print("  note: the load generator was saturated against the bare endpoint, so the bare")
        print("  rate is a lower bound and the ratio an upper bound; see CPU per message")
    listed = ", ".join(f"{c:.1%}" for c in cpus)
    print(
        f"bare / service CPU per message: {percentile(cpus, 0.5):.1%} median of rounds "
        f"({listed})   (same ratio, by CPU cost)"
    )
    p99 = percentile(lat_svc.latencies, 0.99) * 1e3
    print(f"p99 at {args.rate:.0f} msg/s: {p99:.2f} ms   (target ≤ 50 ms)")
    drained = lat_svc.backlog_after_latency_s
    print(
        "service backlog after the latency phase: "
        + (
            f"processed {drained * 1e3:.0f} ms after the last ack"
            if drained is not None
            else f"not drained within {DRAIN_TIMEOUT_S:.0f} s"
        )
    )
    if args.profile:
        print("\n".join(profile_summary(Path(args.profile))))
    print(f"service peak RSS (VmHWM): {rss:.0f} MB")
    received = args.warmup + args.messages * args.rounds + len(lat_svc.latencies)
    received += lat_svc.latency_failed
    from bot.storage.redis_codec import SANDBOX_MAX

    capped = " (at least: the sandbox keeps the latest)" if lat_svc.sent >= SANDBOX_MAX else ""
    print(
        f"outbound SMS sent by the service (sandbox): {lat_svc.sent}{capped} for {received} "
        "replies (the compliance gate may defer sends, e.g. at night in the borrower's time zone)"
    )
    print(redis_commands_line(svc))
    print(f"check: {check}; {len(problems)} warnings/errors in the service log")
    for line in problems[:5]:
        print(f"  {line[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000, help="throughput phase size")
    parser.add_argument("--borrowers", type=int, default=1000, help="accounts loaded")
    parser.add_argument("--rate", type=float, default=200.0, help="latency phase, msg/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency phase length")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up messages per target")
    parser.add_argument(
        "--rounds", type=int, default=5, help="throughput rounds (bare, then service, each)"
    )
    parser.add_argument(
        "--load",
        choices=("aiohttp", "wrk"),
        default="aiohttp",
        help="throughput phase's load generator (wrk: the Debian package; bench/wrkload.py)",
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--bare-repeat",
        type=int,
        default=4,
        help="with wrk: the bare endpoint gets each round's requests this many times over",
    )
    parser.add_argument(
        "--aof", action="store_true", help="redis-server with AOF (appendfsync everysec)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy the service during round 1's throughput phase (collapsed stacks into FILE)",
    )
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server is not None:
        run_bare_server(args.bare_server)
        return
    for name in ("messages", "borrowers", "concurrency", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.rate <= 0 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--rate and --seconds must be positive, --warmup not negative")

    in_workdir("smsbot-bench-", args.keep, lambda workdir, stack: run(args, workdir, stack))


def in_workdir(prefix: str, keep: bool, body: Callable[[Path, contextlib.ExitStack], None]) -> None:
    """Runs ``body`` in a fresh temporary directory with everything it starts stopped at the
    end (its ExitStack), also on Ctrl-C or SIGTERM; the directory is removed unless ``keep``."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # wherever we are, even inside the event loop: clean up, exit

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    # Our own handlers: asyncio.run would otherwise only cancel its main task on Ctrl-C, and
    # a cancellation that a client library turns into an ordinary error goes unnoticed.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, terminated)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with contextlib.ExitStack() as stack:
            body(workdir, stack)
    finally:
        if keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

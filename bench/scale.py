"""Scale-out benchmark: messages/s and CPU per message for the service on one Redis, on a
3-primary Redis Cluster, and as two processes on that cluster — the scaling curve.

Run: ``.venv/bin/python bench/scale.py [--rounds R] [--messages N] [--borrowers B]
[--concurrency C]``. Prints figures; asserts nothing.

What runs (loopback only, every process started here and stopped at exit, also on Ctrl-C):

- a private ``redis-server`` and a private 3-primary Redis Cluster (``--cluster-enabled yes``
  ×3 + ``redis-cli --cluster create``), no persistence, in a temporary directory;
- three services, each ``smsbot serve`` on its own port: on the single Redis; on the
  cluster (``redis+cluster://``); ``smsbot serve --workers 2`` on the cluster. All run at
  once, and the rounds go to them in turn, so the machine's drift (±10 % within minutes)
  falls on all three alike; each is idle while another is measured;
- this process is the load generator (bench/inbound.py's aiohttp client and signed Twilio
  webhooks carrying held-out borrower replies).

Each round sends N messages, closed loop over C connections, to B borrowers of its own
(fresh for every round and topology, so every round is the same work), and waits until
every message is processed and sent (the accounts' queues and outboxes and the senders'
index empty). Figures per topology, the median over the rounds: end-to-end messages/s, the
service's CPU per message (every process of it, from /proc) and Redis's (every node), Redis
commands per message; against one Redis, the median of the rounds' own ratios (the machine's
speed changes between rounds more than between the topologies of one round).

``--compare DIR`` adds a fourth service: one process on the cluster running the code of the
checkout DIR (a git worktree of another commit), in the same rounds.

The machine's cores are printed. On 2 cores the two-process figure cannot show a speed-up
of the service alone: the load generator and Redis use the second core; what it shows is
that the work divides with no extra CPU per message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import inbound  # bench/inbound.py (this script's directory is on the path)
from inbound import (
    API_KEY,
    TWILIO_TOKEN,
    WEBHOOK_PATH,
    Figures,
    account_id,
    answers_ping,
    closed_loop,
    cpu_seconds,
    daytime_zone,
    free_port,
    http,
    load_accounts,
    phone_of,
    spawn,
    stop,
    twilio_request,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
DRAIN_TIMEOUT_S = 120.0


@dataclass
class Topology:
    name: str
    redis_url: str
    redis_pids: list[int]
    workers: int
    base_url: str = ""
    service: subprocess.Popen[bytes] | None = None
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # the service's, per message
    redis_us: list[float] = field(default_factory=list)
    commands: list[float] = field(default_factory=list)  # Redis commands per message
    failed: int = 0
    code: str | None = None  # another checkout's code (--compare)


def family_cpu(pid: int) -> float:
    """CPU of a process and of its children (``--workers``: the parent and its workers)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rpartition(")")[2].split()[1]) == pid:
                    pids.append(int(entry))
    total = 0.0
    for p in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


def start_cluster(
    workdir: Path, stack: contextlib.ExitStack, core: int | None
) -> tuple[str, list[int]]:
    """A 3-primary cluster: its ``redis+cluster://`` URL and the nodes' pids."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise SystemExit("redis-server and redis-cli are needed (apt-get install redis-server)")
    ports: list[int] = []
    while len(ports) < 3:  # each node's bus port (+10000) must be free too
        port = free_port()
        if port + 10000 <= 65535 and port not in ports:
            ports.append(port)
    pids = []
    for port in ports:
        node = workdir / f"node-{port}"
        node.mkdir()
        # fmt: off
        proc = spawn(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(node), "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf", "--daemonize", "no"],
            node / "redis.log", core,
        )
        # fmt: on
        stack.callback(stop, proc)
        wait_until(functools.partial(answers_ping, port), proc, "a node", node / "redis.log")
        pids.append(proc.pid)
    subprocess.run(
        [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        infos = [
            subprocess.run(
                [cli, "-p", str(p), "cluster", "info"], capture_output=True, text=True
            ).stdout
            for p in ports
        ]
        if all("cluster_state:ok" in i for i in infos):
            return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports), pids
        time.sleep(0.1)
    raise SystemExit("the Redis Cluster did not come up")


def start_service(
    t: Topology, workdir: Path, stack: contextlib.ExitStack, core: int | None
) -> None:
    port = free_port()
    t.base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSBOT_")}
    env.update(
        SMSBOT_CONFIG=str(workdir / "no-config.yaml"),
        SMSBOT_REDIS_URL=t.redis_url,
        SMSBOT_API_KEY=API_KEY,
        SMSBOT_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        SMSBOT_PUBLIC_URL=t.base_url,
        SMSBOT_HOST="127.0.0.1",
        SMSBOT_PORT=str(port),
    )
    smsbot = Path(sys.executable).parent / "smsbot"
    cmd = [str(smsbot), "serve"] if smsbot.exists() else [sys.executable, "-m", "bot.cli", "serve"]
    if t.code is not None:  # the same service from another checkout, on this environment
        env["PYTHONPATH"] = t.code
        cmd = [sys.executable, "-m", "bot.cli", "serve"]
    if t.workers > 1:
        cmd += ["--workers", str(t.workers)]
    log = workdir / f"service-{t.name.replace(' ', '-')}.log"
    t.service = spawn(cmd, log, core if t.workers == 1 else None, env)
    stack.callback(stop, t.service)
    wait_until(lambda: http("GET", t.base_url + "/readyz")[0] == 200, t.service, t.name, log)


class Backlog:
    """Work left in the store (queues, outboxes, the senders' index), read with the store's
    own client so that it works on a cluster too."""

    def __init__(self, redis_url: str) -> None:
        from bot.storage.connect import connection_for

        self._pipe = connection_for(redis_url)

    async def wait_empty(self, borrowers: list[int], within: float) -> float | None:
        from bot.storage import keys

        probes = [("EXISTS", keys.queue(account_id(b))) for b in borrowers]
        probes += [("EXISTS", keys.outbox(account_id(b))) for b in borrowers]
        probes.append(("ZCARD", keys.SEND_QUEUE))
        deadline = time.perf_counter() + within
        while sum(await self._pipe.call(*probes)):
            if time.perf_counter() > deadline:
                return None
            await asyncio.sleep(0.02)
        return time.perf_counter()

    async def calls(self) -> tuple[int, float]:
        """Commands every node has run so far (commands inside scripts count too), and the
        CPU seconds Redis spent on this class's probes (EXISTS, INFO), which are left out."""
        from bot.storage.resp_cluster import ClusterConnection

        calls, probes = 0, 0.0
        cluster = self._pipe if isinstance(self._pipe, ClusterConnection) else None
        nodes = [cluster.node(a) for a in await cluster.primaries()] if cluster else [self._pipe]
        for pipe in nodes:
            info = (await pipe.one("INFO", "commandstats")).decode()
            for line in info.splitlines():
                if not line.startswith("cmdstat_"):
                    continue
                name, _, stats = line.removeprefix("cmdstat_").partition(":")
                fields = dict(kv.split("=") for kv in stats.split(","))
                if name in ("exists", "info"):
                    probes += int(fields["usec"]) / 1e6
                else:
                    calls += int(fields["calls"])
        return calls, probes

    async def close(self) -> None:
        await self._pipe.close()


async def one_round(
    session: object, t: Topology, block: int, args: argparse.Namespace, texts: list[str]
) -> None:
    rng = random.Random(block)
    base = block * args.borrowers
    messages = [
        (base + rng.randrange(args.borrowers), rng.choice(texts)) for _ in range(args.messages)
    ]
    reqs = [twilio_request(t.base_url, phone_of(b), text) for b, text in messages]
    backlog = Backlog(t.redis_url)
    fig = Figures()
    try:
        assert t.service is not None
        calls0, probes0 = await backlog.calls()
        cpu0 = family_cpu(t.service.pid)
        rcpu0 = sum(cpu_seconds(p) for p in t.redis_pids)
        started = time.perf_counter()
        await closed_loop(session, t.base_url + WEBHOOK_PATH, reqs, args.concurrency, fig)
        done = await backlog.wait_empty(sorted({b for b, _ in messages}), DRAIN_TIMEOUT_S)
        cpu1 = family_cpu(t.service.pid)
        calls1, probes1 = await backlog.calls()
    finally:
        await backlog.close()
    if done is None:
        raise SystemExit(f"{t.name}: messages still unprocessed after {DRAIN_TIMEOUT_S:.0f} s")
    t.failed += fig.failed
    t.rates.append(fig.acked / (done - started))
    t.cpu_us.append((cpu1 - cpu0) / max(1, fig.acked) * 1e6)
    t.commands.append((calls1 - calls0) / max(1, fig.acked))
    redis_cpu = sum(cpu_seconds(p) for p in t.redis_pids) - rcpu0 - (probes1 - probes0)
    t.redis_us.append(max(0.0, redis_cpu) / max(1, fig.acked) * 1e6)


def run(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> None:
    import aiohttp

    from intents.data import load_heldout

    server_core, client_core = inbound.cores()
    texts = [e.text for e in load_heldout().examples]
    single_proc, single_url = inbound_redis(workdir, stack, client_core)
    cluster_url, cluster_pids = start_cluster(workdir, stack, client_core)
    topologies = [
        Topology("1 process, one Redis", single_url, [single_proc], 1),
        Topology("1 process, 3-primary cluster", cluster_url, cluster_pids, 1),
        Topology("2 processes, 3-primary cluster", cluster_url, cluster_pids, 2),
    ]
    if args.compare:
        # Another version beside this one, in the same rounds: an A/B free of the machine's
        # drift between runs. It shares the cluster (each round's borrowers are its own).
        name = f"1 process, 3-primary cluster, {Path(args.compare).name}"
        topologies.insert(2, Topology(name, cluster_url, cluster_pids, 1, code=args.compare))
    for t in topologies:
        start_service(t, workdir, stack, server_core)
    blocks = (args.rounds + 1) * len(topologies)
    zone = daytime_zone()
    load_accounts(topologies[0].base_url, blocks * args.borrowers, zone)
    load_accounts(topologies[1].base_url, blocks * args.borrowers, zone)  # the cluster's
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})
    print(
        f"scale benchmark: {os.cpu_count()} cores on this machine; {args.rounds} rounds of "
        f"{args.messages} messages (+1 warm-up round) per topology, to {args.borrowers} fresh "
        f"borrowers each, {args.concurrency} connections; {len(texts)} held-out texts\n"
        f"one-process services on CPU {server_core}, the two workers unpinned; load generator "
        f"and every redis-server on CPU {client_core}",
        flush=True,
    )

    profiles: list[str] = []

    async def measured() -> None:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            for r in range(args.rounds + 1):
                for i, t in enumerate(topologies):
                    sampled = args.profile and r == 1 and t.workers == 1
                    if sampled and t.service is not None:
                        out = workdir / f"profile-{i}.txt"
                        profiler = inbound.start_profiler(t.service.pid, out, client_core)
                    await one_round(session, t, r * len(topologies) + i, args, texts)
                    if sampled:
                        inbound.stop_profiler(profiler)
                        profiles.extend([t.name, *inbound.profile_summary(out)])
                if r == 0:  # warm-up: caches, JIT-free but lazy imports, the map
                    for t in topologies:
                        t.rates.clear()
                        t.cpu_us.clear()
                        t.redis_us.clear()
                        t.commands.clear()

    asyncio.run(measured())
    report(topologies)
    print("\n".join(profiles))


def inbound_redis(workdir: Path, stack: contextlib.ExitStack, core: int | None) -> tuple[int, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    log = workdir / "redis.log"
    # fmt: off
    proc = spawn(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"],
        log, core,
    )
    # fmt: on
    stack.callback(stop, proc)
    wait_until(lambda: answers_ping(port), proc, "redis-server", log)
    return proc.pid, f"redis://127.0.0.1:{port}/0"


def report(topologies: list[Topology]) -> None:
    """Medians per topology; "vs one Redis" is the median of the rounds' own ratios (the
    topologies of one round ran minutes apart at most, the rounds' machine state differs)."""
    base = topologies[0]
    width = max(32, *(len(t.name) for t in topologies))
    print(f"\n{'topology':{width}} {'msg/s':>8} {'service CPU/msg':>16} {'vs one Redis':>13} "
          f"{'Redis CPU/msg':>14} {'commands/msg':>13}")  # fmt: skip
    for t in topologies:
        ratio = statistics.median(c / b for c, b in zip(t.cpu_us, base.cpu_us, strict=True))
        print(
            f"{t.name:{width}} {statistics.median(t.rates):8.0f} "
            f"{statistics.median(t.cpu_us):13.0f} µs {(ratio - 1) * 100:+12.1f}% "
            f"{statistics.median(t.redis_us):11.0f} µs {statistics.median(t.commands):13.1f}"
            + (f"   ({t.failed} requests failed)" if t.failed else "")
        )
    print(
        "rounds (msg/s | service µs/msg): "
        + "; ".join(
            f"{t.name.replace(', 3-primary', '').replace(', one Redis', '')}: "
            + ", ".join(f"{r:.0f}|{c:.0f}" for r, c in zip(t.rates, t.cpu_us, strict=True))
            for t in topologies
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per topology")
    parser.add_argument("--messages", type=int, default=3000, help="messages per round")
    parser.add_argument("--borrowers", type=int, default=500, help="borrowers per round")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="also run, in the same rounds, a one-process service on the cluster from the "
        "checkout DIR (e.g. a git worktree of an older commit)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the one-process services in the first measured round with py-spy "
        "(.venv/bin/pip install py-spy; slows those rounds: for the shares, not the rates)",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="smsbot-scale-"))
    with contextlib.ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            run(args, workdir, stack)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
    if args.keep:
        print(f"logs in {workdir}")


if __name__ == "__main__":
    main()

"""``smsbot serve --workers N``: the parent that runs N worker processes on one port.

Each worker is an ordinary ``smsbot serve`` process bound with SO_REUSEPORT, so the kernel
spreads connections over them; everything they share (account locks, timers, recovery, sends,
campaign pacing, sign-in limits) already goes through the Redis store's locks and leases. The
parent serves nothing itself. It

- restarts a worker that dies, after a backoff that doubles while workers keep dying soon
  after their start (0.5 s up to 30 s), and gives up — exiting 1 so systemd or Docker can
  act — when one dies young five times running (a broken flow file, Redis refusing us);
- forwards SIGTERM and SIGINT once to each worker for a graceful stop: a worker stops
  accepting, finishes the requests in flight and drains the conversations it holds (aiohttp's
  shutdown, then the pipeline's close), and exits; one still running ``stop_timeout_s`` later
  is killed;
- forwards SIGHUP: each worker reloads flows, rule packs and SLA settings (``bot/reload.py``),
  exactly as a single process does. Not a restart: a restart would start from files that may
  not load, while a reload keeps the last good version of whatever has a problem;
- on SIGUSR2 replaces the workers one at a time (new code, a retrained model): a successor is
  started beside the worker it replaces (SO_REUSEPORT: both accept), and only once it answers
  /readyz with its own pid is the old one told to stop, so the port never goes dark; a
  successor that does not become ready replaces nothing and the old one serves on.

Workers run in their own process group, so a Ctrl-C on the terminal reaches only the parent
(which forwards it once: a second signal would cut a worker's drain short), and each worker
stops by itself when its parent is gone (``watch_parent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
from aiohttp import web
from prometheus_client import multiprocess

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
# A worker that lived less than this counts as dying young: its restart waits longer.
YOUNG_S = 30.0
GIVE_UP_AFTER = 5  # young deaths running, in one slot
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # the workers' metric files (bot/telemetry/metrics.py)
Command = Callable[[int, bool], list[str]]  # (worker index, first start) -> argv
# (pid, process) -> True once that worker answers /readyz on the shared port; False if it
# died or did not within its time.
Ready = Callable[[int, asyncio.subprocess.Process], Awaitable[bool]]
READY_TIMEOUT_S = 180.0  # a successor may train the model first (a new build): 20-40 s


def ready_on(host: str, port: int) -> Ready:
    """Asks /readyz on the shared port over new connections (the kernel spreads them over the
    workers) until the worker with that pid answers 200."""
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://[{probe}]:{port}/readyz" if ":" in probe else f"http://{probe}:{port}/readyz"

    async def ready(pid: int, proc: asyncio.subprocess.Process) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=2.0)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while loop.time() < deadline and proc.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                    async with session.get(url) as r:
                        if r.status == 200 and (await r.json()).get("pid") == pid:
                            return True
                await asyncio.sleep(0.05)
        return False

    return ready


class Supervisor:
    def __init__(
        self,
        command: Command,
        workers: int,
        env: Mapping[str, str],
        *,
        stop_timeout_s: float = 75.0,
        backoff_start_s: float = BACKOFF_START_S,
        ready: Ready | None = None,
    ) -> None:
        self._command = command
        self._ready = ready
        self._rolling: asyncio.Task[None] | None = None
        self._workers = workers
        self._env = dict(env)
        self._stop_timeout_s = stop_timeout_s
        self._backoff_start_s = backoff_start_s
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._stop_signal = signal.SIGTERM
        self._failed = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        loop.add_signal_handler(signal.SIGUSR2, self.roll)
        slots = [asyncio.create_task(self._keep(i)) for i in range(self._workers)]
        await self._stopping.wait()
        if self._rolling is not None:
            self._rolling.cancel()
            await asyncio.gather(self._rolling, return_exceptions=True)
        self._forward(self._stop_signal)
        code = await self._wait_all()
        for task in slots:
            task.cancel()
        await asyncio.gather(*slots, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
            loop.remove_signal_handler(sig)
        return 1 if self._failed else code

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if not self._stopping.is_set():
            log.info("%s: stopping %d worker(s) gracefully", sig.name, len(self._procs))
            self._stop_signal = sig
            self._stopping.set()

    def roll(self) -> None:
        """SIGUSR2: every worker replaced by a new process, one at a time (new code, a
        retrained model), the port answering throughout."""
        if self._ready is None or self._stopping.is_set():
            return
        if self._rolling is not None and not self._rolling.done():
            log.warning("SIGUSR2: a rolling restart is under way already")
            return
        self._rolling = asyncio.create_task(self._roll())

    async def _roll(self) -> None:
        assert self._ready is not None
        log.info("SIGUSR2: replacing %d worker(s) one at a time", len(self._procs))
        for index in sorted(self._procs):
            old = self._procs[index]
            new = await asyncio.create_subprocess_exec(
                *self._command(index, False), env=self._env, process_group=0
            )
            log.info("worker %d: its successor started (pid %d)", index, new.pid)
            if not await self._ready(new.pid, new) or self._stopping.is_set():
                # The old one keeps serving: a build that does not start replaces nothing.
                log.error(
                    "worker %d: its successor (pid %d) did not become ready; pid %d stays and"
                    " the rolling restart stops",
                    index,
                    new.pid,
                    old.pid,
                )
                with contextlib.suppress(ProcessLookupError):
                    new.terminate()
                await new.wait()
                self._gone(new)
                return
            # The slot's keeper now watches the successor; the old one drains and leaves
            # (read again: it may itself have been restarted meanwhile).
            old = self._procs[index]
            self._procs[index] = new
            with contextlib.suppress(ProcessLookupError):
                old.send_signal(signal.SIGTERM)
            log.info("worker %d replaced: pid %d -> %d", index, old.pid, new.pid)
        log.info("rolling restart done")

    def _gone(self, proc: asyncio.subprocess.Process) -> None:
        if self._env.get(METRICS_DIR):
            # Its gauges of live values (drains waiting) leave the sum; its counters stay.
            multiprocess.mark_process_dead(proc.pid, self._env[METRICS_DIR])  # type: ignore[no-untyped-call]

    def pids(self) -> dict[int, int]:
        """Worker index -> pid of the processes running now."""
        return {i: p.pid for i, p in self._procs.items() if p.returncode is None}

    def _forward(self, sig: signal.Signals) -> None:
        if sig == signal.SIGHUP:
            log.info("SIGHUP: each worker reloads its configuration")
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def _keep(self, index: int) -> None:
        """Worker ``index``: started, and started again whenever it dies, until the stop."""
        first = True
        young_deaths = 0
        delay = self._backoff_start_s
        while not self._stopping.is_set():
            proc = await asyncio.create_subprocess_exec(
                *self._command(index, first), env=self._env, process_group=0
            )
            self._procs[index] = proc
            if self._stopping.is_set():  # the stop came while it was being started
                proc.send_signal(self._stop_signal)
            started = time.monotonic()
            log.info("worker %d started (pid %d)", index, proc.pid)
            code = await proc.wait()
            self._gone(proc)
            while self._procs[index] is not proc and not self._stopping.is_set():
                # Replaced by a rolling restart (it was told to stop): watch its successor.
                proc, started = self._procs[index], time.monotonic()
                code = await proc.wait()
                self._gone(proc)
            if self._stopping.is_set():
                return
            lived = time.monotonic() - started
            first = False
            if lived < YOUNG_S:
                young_deaths += 1
            else:  # it had been up a while: a fresh failure, not a start that keeps failing
                young_deaths, delay = 0, self._backoff_start_s
            if young_deaths >= GIVE_UP_AFTER:
                log.error(
                    "worker %d died %d times soon after starting (last exit %s); giving up:"
                    " its errors are above",
                    index,
                    young_deaths,
                    _status(code),
                )
                self._failed = True
                self.stop()
                return
            log.warning(
                "worker %d (pid %d) exited (%s) after %.1f s; another starts in %.1f s",
                index,
                proc.pid,
                _status(code),
                lived,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _wait_all(self) -> int:
        live = [p for p in self._procs.values() if p.returncode is None]
        if live:
            _, pending = await asyncio.wait(
                [asyncio.create_task(p.wait()) for p in live], timeout=self._stop_timeout_s
            )
            for proc in live:
                if proc.returncode is None:
                    log.error(
                        "worker pid %d still running %.0f s after the stop: killed",
                        proc.pid,
                        self._stop_timeout_s,
                    )
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            if pending:
                await asyncio.gather(*pending)
        codes = [p.returncode for p in self._procs.values()]
        log.info("workers stopped (%s)", ", ".join(_status(c) for c in codes))
        # Ours were asked to stop: 0 is a clean exit, and so is death by the forwarded signal.
        clean = all(c in (0, -self._stop_signal) for c in codes)
        return 0 if clean else 1


def _status(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit {code}"


def watch_parent(parent: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """A worker whose parent (pid ``parent``, passed by the parent itself: by the time the
    worker looks, the parent may already be gone) died stops gracefully rather than serve on,
    orphaned and unsupervised. First of the application's contexts, so it watches while the
    others start too (a cold NLU training takes 20 s)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def watch() -> None:
            while os.getppid() == parent:  # noqa: ASYNC110 - no event tells of a parent's death
                await asyncio.sleep(1.0)
            log.warning("the supervising process (pid %d) is gone: stopping", parent)
            os.kill(os.getpid(), signal.SIGTERM)

        task = asyncio.create_task(watch())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx

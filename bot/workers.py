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
  not load, while a reload keeps the last good version of whatever has a problem.

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
from collections.abc import AsyncIterator, Callable, Mapping

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


class Supervisor:
    def __init__(
        self,
        command: Command,
        workers: int,
        env: Mapping[str, str],
        *,
        stop_timeout_s: float = 75.0,
        backoff_start_s: float = BACKOFF_START_S,
    ) -> None:
        self._command = command
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
        slots = [asyncio.create_task(self._keep(i)) for i in range(self._workers)]
        await self._stopping.wait()
        self._forward(self._stop_signal)
        code = await self._wait_all()
        for task in slots:
            task.cancel()
        await asyncio.gather(*slots, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        return 1 if self._failed else code

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if not self._stopping.is_set():
            log.info("%s: stopping %d worker(s) gracefully", sig.name, len(self._procs))
            self._stop_signal = sig
            self._stopping.set()

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
            if self._env.get(METRICS_DIR):
                # Its gauges of live values (drains waiting) leave the sum; its counters stay.
                multiprocess.mark_process_dead(proc.pid, self._env[METRICS_DIR])  # type: ignore[no-untyped-call]
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

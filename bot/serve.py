"""``smsbot serve``: run the service (aiohttp), print where to find it; ``--workers N``
runs N processes on one port under a supervising parent (``bot/workers.py``)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot.accesslog import MaskingAccessLogger
from bot.app import create_app
from bot.console.app import DEMO_LOGINS
from bot.outbound.setup import carriers_in_use
from bot.settings import Settings, load_settings
from bot.storage.connect import store_kind
from bot.telemetry import logs
from bot.workers import METRICS_DIR, Supervisor, ready_on, watch_parent
from common.errors import UsageError
from intents.nlu import default_cache_dir

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the web service (webhooks, API, simulator)")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port (SO_REUSEPORT) under one supervising process;"
        " more than one needs the Redis store (SMSBOT_REDIS_URL)",
    )
    p.add_argument(
        "--demo", action="store_true", help="demo accounts and the /simulator page (sandbox only)"
    )
    p.add_argument(
        "--demo-force",
        action="store_true",
        help="allow --demo on a shared store (SMSBOT_REDIS_URL) or a non-loopback host"
        " (the simulator has no authentication: never on real data)",
    )
    # Set by the supervising process on its workers (bot/workers.py), not by people.
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.add_argument("--no-banner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--api-key-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.demo:
        overrides["demo"] = True
    if args.demo_force:
        overrides["demo_force"] = True
    settings = load_settings(**overrides)
    json_logs = logs.configure(settings.log_format, settings.log_level) == "json"
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers > 1:
        return _supervise(args, settings)
    key_file = args.api_key_file
    if settings.api_key is None:
        key = secrets.token_urlsafe(24)
        key_file = write_api_key(key)
        warn_generated_key(key_file)
        settings = settings.model_copy(update={"api_key": SecretStr(key)})
    _run(
        settings,
        worker=args.worker_index,
        banner=not args.no_banner,
        key_file=key_file,
        supervisor=args.supervisor_pid,
        json_logs=json_logs,
    )
    return 0


def write_api_key(key: str, directory: Path | None = None) -> Path:
    """A run's generated API key, in a file only this user may read: never printed or logged
    (terminal scroll-back, journald and CI logs are read by more people than the key's
    holders). ``curl -H "Authorization: Bearer $(cat PATH)"``."""
    directory = directory or default_cache_dir()
    path = directory / "api-key"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            os.fchmod(fd, 0o600)  # an older file of other permissions keeps them on open
            out.write(key + "\n")
    except OSError as exc:
        raise UsageError(
            f"SMSBOT_API_KEY is not set and the key made for this run cannot be written to"
            f" {path} ({exc.strerror}): set SMSBOT_API_KEY, or SMSBOT_CACHE_DIR to a writable"
            " directory"
        ) from exc
    return path


def warn_generated_key(path: Path) -> None:
    # In the log too, not only in the banner: a service started by a supervisor or with JSON
    # logs shows no banner, and every restart makes a new key (clients then get 401).
    log.warning(
        "SMSBOT_API_KEY is not set: this run's API key was made now and is in %s; a restart"
        " makes another, so clients holding this one get 401 after it (set SMSBOT_API_KEY)",
        path,
    )


def _supervise(args: argparse.Namespace, settings: Settings) -> int:
    """The parent of ``--workers N``: checks what every worker would share, then runs them."""
    if not settings.redis_url:
        raise UsageError(
            f"--workers {args.workers} needs the Redis store (set SMSBOT_REDIS_URL): on the"
            " memory store each process would have its own accounts, conversations and timers"
        )
    if settings.demo:
        raise UsageError(
            "--demo runs one process: its demo data and simulator clock live in that process"
        )
    env = dict(os.environ)
    key_file: Path | None = None
    if settings.api_key is None:  # one key for all workers, made here
        key = secrets.token_urlsafe(24)
        key_file = write_api_key(key)
        warn_generated_key(key_file)
        env["SMSBOT_API_KEY"] = key
    if settings.session_key is None:  # one session key, or a worker could not read a cookie
        env["SMSBOT_SESSION_KEY"] = Fernet.generate_key().decode()
        log.warning(
            "SMSBOT_SESSION_KEY is not set: the workers share a key made for this run, so"
            " console sessions end when the service restarts"
        )
    # Every worker writes its metrics to files of one directory, and whichever answers
    # /metrics sums them (prometheus-client's multiprocess mode). Emptied first: files of an
    # earlier run would be summed too.
    metrics_dir = Path(env.get(METRICS_DIR) or tempfile.mkdtemp(prefix="smsbot-metrics-"))
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for old in metrics_dir.glob("*.db"):
        old.unlink()
    env[METRICS_DIR] = str(metrics_dir)
    passed: list[str] = []
    if args.host:
        passed += ["--host", args.host]
    if args.port is not None:
        passed += ["--port", str(args.port)]
    if key_file is not None:
        passed += ["--api-key-file", str(key_file)]

    def command(index: int, first: bool) -> list[str]:
        argv = [sys.executable, "-m", "bot.cli", "serve", *passed, "--worker-index", str(index)]
        argv += ["--supervisor-pid", str(os.getpid())]
        if index != 0 or not first:  # one banner, once
            argv.append("--no-banner")
        return argv

    supervisor = Supervisor(
        command, args.workers, env, ready=ready_on(settings.host, settings.port)
    )
    log.info("smsbot supervisor (pid %d): %d workers", os.getpid(), args.workers)
    return asyncio.run(supervisor.run())


def _run(
    settings: Settings,
    *,
    worker: int | None,
    banner: bool,
    key_file: Path | None,
    supervisor: int | None = None,
    json_logs: bool = False,
) -> None:
    app = create_app(settings)
    if supervisor is not None:
        app.cleanup_ctx.insert(0, watch_parent(supervisor))

    async def print_banner(app: web.Application) -> None:
        base = settings.base_url
        store = store_kind(settings.redis_url)
        carriers = carriers_in_use(settings)
        lines = [
            "",
            f"smsbot is running on {base}  (store: {store}, carriers: {', '.join(carriers)})",
        ]
        if worker is not None:
            lines[-1] += f"  [worker {worker}, pid {os.getpid()}]"
        if settings.demo:
            lines.append(f"  simulator        {base}/simulator")
        lines.append(f"  agents console   {base}/console")
        for name, password in app[DEMO_LOGINS].items():
            # Printed once: made for this run, in memory (demo mode), never logged.
            lines.append(f"    demo sign-in   {name} / {password}")
        if settings.demo and settings.demo_force:
            lines.append(
                "  WARNING: demo forced (--demo-force): the simulator is unauthenticated and its"
                " clock moves every account's timers in this process"
            )
        if "sandbox" in carriers:
            lines.append(f"  sandbox messages {base}/api/sandbox/messages")
        if settings.pause_processing:
            lines.append(
                "  PAUSED (SMSBOT_PAUSE_PROCESSING): replies are accepted and stored, not"
                " processed, until a start without it"
            )
        # The delivery-receipt URLs to register with each carrier (tokens not printed).
        receipts = {
            "twilio": "(set per message as StatusCallback)",
            "aliyun": f"{base}/webhooks/aliyun/report/<SMSBOT_ALIYUN_PATH_TOKEN>",
            "tencent": f"{base}/webhooks/tencent/status/<SMSBOT_TENCENT_PATH_TOKEN>",
        }
        for name in carriers:
            if name in receipts:
                lines.append(f"  {name} receipts  {receipts[name]}")
        lines += [
            f"  API document     {base}/api/openapi.json",
            f"  health           {base}/healthz   {base}/readyz",
        ]
        if settings.metrics_port is not None:
            where = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
            lines.append(f"  metrics          {where}")
        elif settings.metrics_token is not None:
            lines.append(f"  metrics          {base}/metrics (Bearer $SMSBOT_METRICS_TOKEN)")
        if key_file is not None:
            lines.append(
                f"  API key          made for this run, in {key_file} (readable by you only);"
                " set SMSBOT_API_KEY to fix one"
            )
        if json_logs:
            # The stream is JSON lines for a collector: the banner is one of them, without the
            # demo's passwords (a terminal shows those: SMSBOT_LOG_FORMAT=console).
            shown = [line.strip() for line in lines[2:] if "demo sign-in" not in line]
            if app[DEMO_LOGINS]:
                shown.append("demo sign-ins: shown on a terminal only (SMSBOT_LOG_FORMAT=console)")
            log.info("%s", lines[1], extra={"urls": shown})
        else:
            print("\n".join(lines) + "\n", file=sys.stderr, flush=True)

    if banner:
        app.on_startup.append(print_banner)
    app.on_startup.append(tune_garbage_collector)  # after every cleanup_ctx has started
    app.on_shutdown.append(say_stopping)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        access_log_class=MaskingAccessLogger,
        print=None,
        keepalive_timeout=settings.idle_timeout_s,
        # Workers share the port; the kernel spreads new connections over them.
        reuse_port=worker is not None,
        loop=new_event_loop(),
    )
    log.info("smsbot (pid %d) stopped", os.getpid())


async def say_stopping(app: web.Application) -> None:
    # A SIGTERM (or Ctrl-C) reached the process: said, so an operator's log shows the stop
    # and how long the work in flight took to finish (the next line, "stopped").
    log.info("smsbot (pid %d) stopping: no new requests, finishing the work in flight", os.getpid())


# Young-generation collections after this many new container objects instead of 700. Per
# message the service creates a few thousand objects and almost no reference cycles (about 0.2
# per message are collected); at 700 a young collection ran every few messages and, with the
# older generations it triggers, cost 37 µs per message. At 20,000: 10 µs per message, each
# young collection pausing about 5 ms (bench/inbound.py with a gc.callbacks probe).
GC_THRESHOLDS = (20_000, 10, 10)


async def tune_garbage_collector(app: web.Application) -> None:
    """What start-up built (the NLU model, jieba's dictionary, flows, rule packs) lives as
    long as the process: moved out of the collector's sight, so a full collection no longer
    walks it (about 11 ms each). Then the thresholds above."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (a dependency on Linux): the same service costs about a
    quarter less CPU per message than on asyncio's default loop (bench/inbound.py)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - other platforms
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()

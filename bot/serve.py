"""``smsbot serve``: run the service (aiohttp), print where to find it."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from typing import Any

from aiohttp import web

from bot.app import create_app
from bot.console.app import DEMO_LOGINS
from bot.context import API_KEY
from bot.outbound.setup import carriers_in_use
from bot.settings import load_settings


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the web service (webhooks, API, simulator)")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument(
        "--demo", action="store_true", help="demo accounts and the /simulator page (sandbox only)"
    )
    p.add_argument(
        "--demo-force",
        action="store_true",
        help="allow --demo on a shared store (SMSBOT_REDIS_URL) or a non-loopback host"
        " (the simulator has no authentication: never on real data)",
    )
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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)

    async def banner(app: web.Application) -> None:
        base = settings.base_url
        store = "redis" if settings.redis_url else "memory (data is lost on exit)"
        carriers = carriers_in_use(settings)
        lines = [
            "",
            f"smsbot is running on {base}  (store: {store}, carriers: {', '.join(carriers)})",
        ]
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
        if settings.api_key is None:
            lines.append(
                f"  API key (this run only; set SMSBOT_API_KEY to fix one): {app[API_KEY]}"
            )
        print("\n".join(lines) + "\n", file=sys.stderr, flush=True)

    app.on_startup.append(banner)
    app.on_startup.append(tune_garbage_collector)  # after every cleanup_ctx has started
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        print=None,
        keepalive_timeout=settings.idle_timeout_s,
        loop=new_event_loop(),
    )
    return 0


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

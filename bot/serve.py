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
from bot.context import API_KEY
from bot.settings import load_settings


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the web service (webhooks, API, simulator)")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument(
        "--demo", action="store_true", help="demo accounts and the /simulator page (sandbox only)"
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
    settings = load_settings(**overrides)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)

    async def banner(app: web.Application) -> None:
        base = settings.base_url
        store = "redis" if settings.redis_url else "memory (data is lost on exit)"
        lines = [
            "",
            f"smsbot is running on {base}  (store: {store}, provider: {settings.provider})",
        ]
        if settings.demo:
            lines.append(f"  simulator        {base}/simulator")
        lines += [
            f"  sent messages    {base}/api/sandbox/messages",
            f"  API document     {base}/api/openapi.json",
            f"  health           {base}/healthz   {base}/readyz",
        ]
        if settings.api_key is None:
            lines.append(
                f"  API key (this run only; set SMSBOT_API_KEY to fix one): {app[API_KEY]}"
            )
        print("\n".join(lines) + "\n", file=sys.stderr, flush=True)

    app.on_startup.append(banner)
    app.on_startup.append(_freeze_startup_objects)  # after every cleanup_ctx has started
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        print=None,
        loop=new_event_loop(),
    )
    return 0


async def _freeze_startup_objects(app: web.Application) -> None:
    """What start-up built (the NLU model, jieba's dictionary, flows, rule packs) lives as long
    as the process: moved out of the garbage collector's sight. A full collection walked all
    of it, about 11 ms each; the service makes no reference cycles per message, so those
    walks found nothing (bench/inbound.py: 20-30 µs per message before, a few after)."""
    gc.collect()
    gc.freeze()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (a dependency on Linux): the same service costs about a
    quarter less CPU per message than on asyncio's default loop (bench/inbound.py)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - other platforms
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()

"""Operators' reload: flows (with their templates), compliance rule packs (with their
lexicons) and the case queue's SLA settings (config/desk.yaml) are read again while the
service runs — on SIGHUP and ``POST /api/admin/reload``.

Nothing with a problem replaces what runs:
- the flow registry keeps each flow's last good version (``dialogs.registry``); a new version
  is refused when conversations in a state it drops would have nowhere to go, or when a
  carrier in use has no approved template code for one of its templates;
- a rule-pack file that does not load leaves the running packs in place, whole.

The answer names every problem as ``file:line: field: message``. Conversations already under
way move to a new flow version at their next step, through its ``migrations:``. The NLU
(``intents/``) is not reloaded: it is the service's code and model, deployed with it, and
retraining takes seconds of CPU that a running service should not spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web

from bot.api import require_key
from bot.compliance.gate import Gate
from bot.context import DESK, FLOWS, GATE, SETTINGS
from bot.errors import ConfigError, Problem
from bot.outbound import setup as outbound_setup
from bot.schemas import ReloadReport

log = logging.getLogger(__name__)

RELOAD_LOCK = web.AppKey("reload_lock", asyncio.Lock)


async def reload_config(app: web.Application) -> ReloadReport:
    """Reads flows and rule packs again; one reload at a time."""
    async with app[RELOAD_LOCK]:
        settings = app[SETTINGS]
        registry = app[FLOWS]
        vet = functools.partial(outbound_setup.template_code_problems, settings)
        problems: list[Problem] = list(await asyncio.to_thread(registry.reload, vet))
        rules: Literal["reloaded", "kept"] = "kept"
        try:
            fresh = await asyncio.to_thread(Gate.load, settings.compliance_file)
        except ConfigError as exc:
            problems += exc.problems
        else:
            app[GATE].adopt(fresh)
            rules = "reloaded"
        # The case queue's SLA settings: a bad file keeps the running ones.
        problems += await asyncio.to_thread(app[DESK].reload)
        flows = {name: registry.get(name).version for name in registry.names()}
        report = ReloadReport(
            ok=not problems, flows=flows, rules=rules, problems=[str(p) for p in problems]
        )
    if report.ok:
        log.info("configuration reloaded: flows %s; rule packs reloaded", flows)
    else:
        log.warning(
            "configuration reloaded with %d problem(s); what they concern keeps running as "
            "before:\n%s",
            len(report.problems),
            "\n".join(report.problems),
        )
    return report


async def post_reload(request: web.Request) -> web.Response:
    require_key(request)
    report = await reload_config(request.app)
    # 422: the request was understood, but (part of) what it asked to load was refused.
    return web.json_response(report.model_dump(), status=200 if report.ok else 422)


def routes() -> list[web.RouteDef]:
    return [web.post("/api/admin/reload", post_reload)]


async def reload_ctx(app: web.Application) -> AsyncIterator[None]:
    """The reload lock, and SIGHUP → reload (where the event loop can take signals)."""
    app[RELOAD_LOCK] = asyncio.Lock()
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[ReloadReport]] = set()

    def on_sighup() -> None:
        task = loop.create_task(reload_config(app))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    installed = False
    # Only the main thread may install signal handlers (not so in some embeddings).
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        installed = True
    yield
    if installed:
        loop.remove_signal_handler(signal.SIGHUP)
    for task in list(tasks):
        with contextlib.suppress(Exception):
            await task

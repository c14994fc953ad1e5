"""Wires the console into ``create_app``: the agent store (``AGENTS``, from the same store
settings as the main store), the templates, the guard middleware and the routes. In demo mode
it also makes a demo agent and a demo supervisor with passwords for this run
(``DEMO_LOGINS``, printed by ``smsbot serve``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.console import auth, cases, dashboard, live, pages, views
from bot.console.agents import add_agent
from bot.context import AGENTS, CLOCK, SETTINGS
from bot.settings import Settings
from bot.storage.agents import AgentError, AgentStore, Role, open_agent_store

# name -> password of the demo agents made at this start (those that existed are not listed).
DEMO_LOGINS = web.AppKey("console_demo_logins", dict[str, str])
DEMO_AGENTS: tuple[tuple[str, Role], ...] = (("demo", "agent"), ("demo-lead", "supervisor"))


def setup(app: web.Application, settings: Settings, agents: AgentStore | None = None) -> None:
    """``agents`` may be injected (tests); else the settings' store, closed at cleanup."""
    app.cleanup_ctx.append(_agents_ctx(agents))
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("bot.console", "templates"),
        autoescape=True,  # every value is escaped: names and messages are typed by people
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
    )
    env.globals.update(pages.template_globals())
    env.filters.update(pages.filters())
    app.middlewares.append(auth.middleware(auth.session_storage(settings)))
    app.add_routes([*views.routes(), *pages.routes(), *cases.routes(), *dashboard.routes()])
    live.setup(app)


def _agents_ctx(injected: AgentStore | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[AGENTS] = (
            injected if injected is not None else open_agent_store(app[SETTINGS].redis_url)
        )
        app[DEMO_LOGINS] = await _demo_agents(app) if app[SETTINGS].demo else {}
        yield
        if injected is None:
            await app[AGENTS].close()

    return ctx


async def _demo_agents(app: web.Application) -> dict[str, str]:
    made: dict[str, str] = {}
    for name, role in DEMO_AGENTS:
        password = secrets.token_urlsafe(9)  # 12 characters, printed once at start
        try:
            await add_agent(app[AGENTS], name, role, password, app[CLOCK].now())
        except AgentError:
            continue  # exists already (a forced demo on a shared store): left as it is
        made[name] = password
    return made

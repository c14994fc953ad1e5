"""The console's signed-in pages (server-rendered with aiohttp-jinja2): the queue, the unmatched
messages and one case's conversation. They read through the same functions as the JSON API
(bot/console/cases.py) and write only through it: the page's script (static/console.js)
posts each form to its API route with the session's CSRF token and re-reads the page's live
part when the desk's feed (bot/console/live.py) says something changed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_session
from aiohttp import web

from bot.console import labels
from bot.console.auth import csrf_token, current_agent, render
from bot.console.cases import queue_rows, refusals, unmatched_rows
from bot.context import AGENTS, CLOCK, DESK, DESK_SERVICE
from bot.desk.view import build_view

STATIC = Path(__file__).resolve().parent / "static"
ROLE_LABELS = {"agent": "客服 Agent", "supervisor": "主管 Supervisor"}
TABS = [
    {"id": "queue", "label": "队列", "en": "Queue", "href": "/console"},
    {"id": "unmatched", "label": "未匹配", "en": "Unmatched", "href": "/console/unmatched"},
    {"id": "dashboard", "label": "看板", "en": "Dashboard", "href": "/console/dashboard"},
]
_VIEWS = [
    ("all", "全部", "All"),
    ("mine", "我的", "Mine"),
    ("unassigned", "未认领", "Unassigned"),
]
REVEAL_S = 300  # how long a reveal lasts on the agent's screen
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "CST")  # the agents' clock (the lenders are in China)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console", queue_page),
        web.get("/console/unmatched", unmatched_page),
        web.get("/console/cases/{account_id}", case_page),
        web.post("/console/cases/{account_id}/reveal", reveal),
        web.get("/console/static/console.js", script),
    ]


def local(value: dt.datetime | None) -> str:
    """A time as agents read it: Beijing time, to the minute."""
    if value is None:
        return "—"
    return value.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


def template_globals() -> dict[str, Any]:
    return {
        "label": labels.label,
        "duration": labels.duration,
        "REASONS": labels.REASONS,
        "PRIORITIES": labels.PRIORITIES,
        "CASE_STATES": labels.CASE_STATES,
        "DELIVERY": labels.DELIVERY,
        "HOLDS": labels.HOLDS,
        "FLAGS": labels.FLAGS,
        "closed_as": labels.closed_as,
        "RESOLUTIONS": labels.RESOLUTIONS,
    }


def filters() -> dict[str, Any]:
    return {"local": local, "pathpart": lambda v: quote(str(v), safe="")}


async def page(
    request: web.Request, template: str, tab: str | None, context: dict[str, Any]
) -> web.Response:
    """A signed-in page: the agent, the session's CSRF token (the script sends it), the tabs."""
    agent = current_agent(request)
    session = await aiohttp_session.get_session(request)
    base = {
        "agent": agent,
        "role_label": ROLE_LABELS[agent.role],
        "csrf": csrf_token(session),
        # The dashboard is for supervisors: an agent is not shown a tab that refuses them.
        "tabs": [t for t in TABS if t["id"] != "dashboard" or agent.role == "supervisor"],
        "current_tab": tab,
    }
    return render(request, template, base | context)


async def queue_page(request: web.Request) -> web.Response:
    view = request.query.get("view", "all")
    if view not in {v for v, _, _ in _VIEWS}:
        view = "all"
    reason = request.query.get("reason") or None
    listing = await queue_rows(
        request, mine=view == "mine", unassigned=view == "unassigned", reason=reason
    )
    chips = [
        {
            "id": v,
            "label": zh,
            "en": en,
            "current": v == view,
            "href": "/console?" + urlencode({"view": v} | ({"reason": reason} if reason else {})),
        }
        for v, zh, en in _VIEWS
    ]
    context = {
        "rows": listing.cases,
        "total": listing.total,
        "reasons": listing.reasons,
        "reason": reason,
        "view": view,
        "filters": chips,
        "now": request.app[CLOCK].now(),
    }
    return await page(request, "queue.html", "queue", context)


async def unmatched_page(request: web.Request) -> web.Response:
    listing = await unmatched_rows(request)
    return await page(request, "unmatched.html", "unmatched", {"messages": listing.messages})


async def case_page(request: web.Request) -> web.Response:
    desk, agent = request.app[DESK_SERVICE], current_agent(request)
    account_id = request.match_info["account_id"]
    session = await aiohttp_session.get_session(request)
    now = request.app[CLOCK].now()
    # Shown unmasked for a while after the agent asked (and the reveal was audited then):
    # the page's live refreshes re-read it, and they must not each write an audit entry.
    revealed = _revealed(session, now).get(account_id, 0) > now.timestamp()
    with refusals():
        if revealed:
            view = await build_view(
                desk.store, desk.gate, desk.registry, now, account_id, reveal=True
            )
        else:
            view = await desk.view(agent.name, agent.role, account_id)
        templates = await desk.templates(agent.name, agent.role, account_id)
    case = view.case
    can_act = case is not None and (case.holder == agent.name or agent.role == "supervisor")
    agents = []
    if agent.role == "supervisor":
        agents = [a.name for a in await request.app[AGENTS].all() if not a.disabled]
    account = await desk.store.get_account(account_id)
    pack = desk.gate.pack(account.pack if account else None).name
    context = {
        "v": view,
        "starter": request.app[DESK].config.composer_starter.get(pack, ""),
        "can_act": can_act,
        "templates": templates,
        "agents": agents,
        "now": now,
    }
    return await page(request, "case.html", None, context)


async def reveal(request: web.Request) -> web.Response:
    """Shows the borrower's number and name unmasked to this agent for ``REVEAL_S``; the
    reveal is audited (who, when) on the account."""
    desk, agent = request.app[DESK_SERVICE], current_agent(request)
    account_id = request.match_info["account_id"]
    with refusals():
        await desk.view(agent.name, agent.role, account_id, reveal=True)
    session = await aiohttp_session.get_session(request)
    now = request.app[CLOCK].now()
    shown = {k: t for k, t in _revealed(session, now).items() if t > now.timestamp()}
    shown[account_id] = int(now.timestamp()) + REVEAL_S
    session["reveal"] = dict(list(shown.items())[-20:])  # the cookie stays small
    raise web.HTTPSeeOther(f"/console/cases/{quote(account_id, safe='')}")


def _revealed(session: aiohttp_session.Session, now: dt.datetime) -> dict[str, int]:
    raw = session.get("reveal")
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, int)}


async def script(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "console.js", headers={"Cache-Control": "no-cache"})

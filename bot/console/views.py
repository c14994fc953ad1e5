"""The console's pages (``/console…``, server-rendered with aiohttp-jinja2) and its JSON API
(``/api/console/…``). The guard (bot/console/auth.py) has already checked the session and the
CSRF token of every route here except the sign-in ones."""

from __future__ import annotations

from typing import Any

import aiohttp_session
from aiohttp import web

from bot.api import read_json
from bot.console.auth import (
    API_PREFIX,
    CSRF_FIELD,
    current_agent,
    form_of,
    refuse,
    render,
    require_role,
    safe_next,
    signed_in,
)
from bot.console.auth import csrf_token as session_csrf
from bot.console.schemas import AgentList, AgentView, LoginBody, SignedIn
from bot.console.signin import Refused, attempt, end_session, start_session
from bot.context import AGENTS
from bot.transport.inbound import WebhookError


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/login", login_page),
        web.post("/console/login", login_form),
        web.post("/console/logout", logout_form),
        web.post(API_PREFIX + "login", api_login),
        web.post(API_PREFIX + "logout", api_logout),
        web.get(API_PREFIX + "me", api_me),
        web.get(API_PREFIX + "agents", api_agents),
    ]


# --- pages ----------------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    next_url = safe_next(request.query.get("next"))
    if await signed_in(request, session) is not None:
        raise web.HTTPSeeOther(next_url)
    notice = "您已退出登录 (You have signed out)" if "bye" in request.query else None
    return _login(request, session, next_url, notice=notice)


async def login_form(request: web.Request) -> web.Response:
    form = await form_of(request)
    name, password = form.get("name", ""), form.get("password", "")
    next_url = safe_next(form.get("next"))
    session = await aiohttp_session.get_session(request)
    if not name.strip() or not password:
        error = "请输入用户名和密码 (Enter your name and password)"
        return _login(request, session, next_url, error=error, name=name, status=400)
    outcome = await attempt(request, name, password)
    if isinstance(outcome, Refused):
        response = _login(
            request, session, next_url, error=outcome.reason, name=name, status=outcome.status
        )
        if outcome.retry_after is not None:
            response.headers["Retry-After"] = str(outcome.retry_after)
        return response
    await start_session(request, outcome)
    raise web.HTTPSeeOther(next_url)


async def logout_form(request: web.Request) -> web.Response:
    await end_session(request, current_agent(request))
    raise web.HTTPSeeOther("/console/login?bye=1")


def _login(
    request: web.Request,
    session: aiohttp_session.Session,
    next_url: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    name: str = "",
    status: int = 200,
) -> web.Response:
    context = {
        "csrf": session_csrf(session),
        "csrf_field": CSRF_FIELD,
        "next": next_url,
        "error": error,
        "notice": notice,
        "name": name[:64],
    }
    return _page("login.html", request, context, status=status)


def _page(
    template: str, request: web.Request, context: dict[str, Any], status: int = 200
) -> web.Response:
    return render(request, template, context, status)


# --- JSON API -------------------------------------------------------------------------------


async def api_login(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        # What keeps another site from signing a browser in as someone else: a cross-site form
        # can post JSON-looking text/plain, but never application/json (that needs CORS).
        raise WebhookError(400, "Content-Type must be application/json")
    body: LoginBody = await read_json(request, LoginBody)
    outcome = await attempt(request, body.name, body.password)
    if isinstance(outcome, Refused):
        response = refuse(request, outcome.status, outcome.reason)
        if outcome.retry_after is not None:
            response.headers["Retry-After"] = str(outcome.retry_after)
        return response
    token = await start_session(request, outcome)
    return _json(SignedIn(agent=AgentView.of(outcome), csrf_token=token))


async def api_logout(request: web.Request) -> web.Response:
    await end_session(request, current_agent(request))
    return web.Response(status=204)


async def api_me(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    agent = current_agent(request)
    return _json(SignedIn(agent=AgentView.of(agent), csrf_token=session_csrf(session)))


@require_role("supervisor")
async def api_agents(request: web.Request) -> web.Response:
    agents = await request.app[AGENTS].all()
    return _json(AgentList(agents=[AgentView.of(a) for a in agents]))


def _json(model: SignedIn | AgentList) -> web.Response:
    return web.Response(
        text=model.model_dump_json(),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )

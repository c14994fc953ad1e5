"""Who is signed in to the console, and what they may do: sessions, the guard, CSRF, roles.

Sessions are aiohttp-session's ``EncryptedCookieStorage`` (Fernet): the cookie holds the
agent's name, the record's ``generation`` it was made with and the session's CSRF token,
encrypted and authenticated with ``SMSBOT_SESSION_KEY``. Nothing about a session is stored
server-side, so every request reads the agent's record (one store read) and refuses the
session when the agent is gone, disabled, or changed since (a new password: ``generation``
grew). A session also ends ``session_idle_s`` after its last request (the time of each request
is kept in it, by the service's clock) and ``session_max_age_s`` after the sign-in
(aiohttp-session's own check of the time the session was made, and the cookie's Max-Age).

One middleware guards every ``/console…`` page and ``/api/console/…`` route; every other path
passes through it untouched (one prefix test: the webhooks' path pays nothing else):

- not signed in: pages are redirected to ``/console/login?next=…``, the API answers 401;
- a write (POST, PUT, PATCH, DELETE) must carry the session's CSRF token: a form as the
  hidden field ``csrf_token``, a JSON call as the ``X-CSRF-Token`` header; else 403 before
  any handler runs, so nothing changes. The JSON sign-in is the one write without it: it has
  no session yet, and it takes only ``Content-Type: application/json``, which a cross-site
  page cannot send (that needs CORS, which the service never grants); the sign-in *form*
  carries the token of an anonymous session.

Handlers get the agent with :func:`current_agent`; :func:`require_role` refuses the rest (403).
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import aiohttp_session
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from bot.context import AGENTS, CLOCK, SETTINGS
from bot.settings import Settings
from bot.storage.agents import AgentRecord, Role

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COOKIE = "smsbot_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PAGE = "/console/login"
API_PREFIX = "/api/console/"
API_LOGIN = API_PREFIX + "login"
# Reachable without a session (the guard still checks the form's CSRF token).
PUBLIC = frozenset({("GET", LOGIN_PAGE), ("POST", LOGIN_PAGE), ("POST", API_LOGIN)})
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_AGENT = web.RequestKey("console_agent", AgentRecord)  # the signed-in agent's record
_RANK: dict[Role, int] = {"agent": 1, "supervisor": 2}  # a supervisor may do what agents do
_ROLE_NAMES: dict[Role, str] = {"agent": "客服", "supervisor": "主管"}


def session_storage(settings: Settings) -> EncryptedCookieStorage:
    if settings.session_key is not None:
        key = settings.session_key.get_secret_value().encode()
    else:
        key = Fernet.generate_key()
        log.warning(
            "SMSBOT_SESSION_KEY is not set: console sessions use a key made for this run, so"
            " they end when the service restarts and another process cannot read them"
        )
    return EncryptedCookieStorage(
        Fernet(key),
        cookie_name=COOKIE,
        max_age=settings.session_max_age_s,
        httponly=True,
        samesite="Lax",
        secure=settings.session_cookie_secure,
    )


def is_console(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == "/console" or path.startswith("/console/")


def middleware(storage: EncryptedCookieStorage) -> Middleware:
    sessions = aiohttp_session.session_middleware(storage)

    @web.middleware
    async def console(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_console(request.path):
            return await handler(request)
        return await sessions(request, functools.partial(_guard, handler=handler))

    return console


async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    session = await aiohttp_session.get_session(request)
    api = request.path.startswith(API_PREFIX)
    if (request.method, request.path) not in PUBLIC:
        agent = await signed_in(request, session)
        if agent is None:
            if api:
                return refuse(request, 401, "not signed in: POST /api/console/login first")
            raise web.HTTPSeeOther(login_url(request))
        request[_AGENT] = agent
    if request.method not in _SAFE and (request.method, request.path) != ("POST", API_LOGIN):
        given = request.headers.get(CSRF_HEADER)
        if given is None and not api:
            given = (await form_of(request)).get(CSRF_FIELD) or None
        expected = session.get("csrf")
        if given is None or not isinstance(expected, str):
            where = f"the {CSRF_HEADER} header" if api else f"the form's {CSRF_FIELD}"
            return refuse(
                request, 403, f"页面已过期，请刷新后重试 (CSRF token missing in {where}: reload)"
            )
        if not secrets.compare_digest(given.encode(), expected.encode()):
            return refuse(
                request, 403, "页面已过期，请刷新后重试 (CSRF token wrong, an old page? Reload)"
            )
    return await handler(request)


async def form_of(request: web.Request) -> dict[str, str]:
    """The url-encoded form of a console page's POST (the only kind its pages send); empty when
    there is none or it cannot be read (a bad charset, bytes that are not UTF-8), so the caller
    refuses it for what is missing (a 4xx, never a 500)."""
    if request.content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        form = await request.post()
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
        return {}
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def signed_in(request: web.Request, session: aiohttp_session.Session) -> AgentRecord | None:
    """The session's agent if the session still stands; else None (and the session ends)."""
    name, generation = session.get("agent"), session.get("gen")
    if not isinstance(name, str) or not isinstance(generation, int):
        return None
    now = int(request.app[CLOCK].now().timestamp())
    seen = session.get("seen")
    if not isinstance(seen, int) or now - seen > request.app[SETTINGS].session_idle_s:
        log.info("console session of %s ended: idle", name)
        session.invalidate()
        return None
    agent = await request.app[AGENTS].get(name)
    if agent is not None and not agent.disabled and agent.generation == generation:
        session["seen"] = now  # re-issued: the idle time counts from this request
        return agent
    why = "gone" if agent is None else "disabled" if agent.disabled else "changed"
    log.info("console session of %s ended: the agent was %s", name, why)
    session.invalidate()
    return None


def current_agent(request: web.Request) -> AgentRecord:
    """The signed-in agent of a request the guard let through (any console route but the
    sign-in ones)."""
    agent = request.get(_AGENT)
    if not isinstance(agent, AgentRecord):
        raise RuntimeError(f"{request.path} is not behind the console's guard")
    return agent


def csrf_token(session: aiohttp_session.Session) -> str:
    """The session's CSRF token, made on first use (an anonymous session's for the sign-in
    form; a new one at sign-in)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def require_role(role: Role) -> Callable[[Handler], Handler]:
    """Only agents of ``role`` or above (a supervisor may do what an agent may); else 403."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            agent = current_agent(request)
            if _RANK[agent.role] < _RANK[role]:
                log.info("console: %s (%s) refused %s", agent.name, agent.role, request.path)
                return refuse(
                    request, 403, f"{_ROLE_NAMES[role]}才可操作 (only a {role} may do this)"
                )
            return await handler(request)

        return guarded

    return wrap


def refuse(request: web.Request, status: int, reason: str) -> web.Response:
    """A refusal: JSON (the project's ``Error``) under /api/console/, else a short page."""
    if request.path.startswith(API_PREFIX):
        return web.json_response({"error": reason, "status": status}, status=status)
    context = {"status": status, "reason": reason, "title": _TITLES.get(status, "出错了")}
    return render(request, "error.html", context, status)


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """A console page. Pages carry the session's CSRF token and the agent's name: never
    cached, never framed (clickjacking), and only this site's scripts, styles and forms."""
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = _CSP
    return response


_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


_TITLES = {
    401: "请先登录 (Sign in first)",
    403: "无权操作 (Not allowed)",
    429: "尝试次数过多 (Too many attempts)",
}


def login_url(request: web.Request) -> str:
    """The sign-in page, coming back to this page (GET) afterwards."""
    if request.method != "GET" or request.path == "/console":
        return LOGIN_PAGE
    return f"{LOGIN_PAGE}?next={quote(request.path_qs, safe='/')}"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console page of this site only (no open redirect)."""
    if not value or "\\" in value or not value.startswith("/console"):
        return "/console"
    rest = value.removeprefix("/console")
    if (rest and rest[0] not in "/?#") or rest.startswith("//"):
        return "/console"
    return value

"""Signing in and out: the attempt limits, the password check, the session's contents, the log.

Attempts are limited per agent name and per client address with the store's token buckets
(``Store.take_tokens``: on Redis one bucket shared by every process), taken *before* the
password is checked, so a guesser also cannot make the service hash without bound. Every
attempt counts, right or wrong: an agent who signs in five times in a minute is rare, and a
limit only on failures would need a second store call on each success. The name's bucket is
keyed by a hash of the name as typed (lower-cased), so unknown names are limited too and no
raw text reaches a Redis key.

The log names the agent and the address, never the password; an unknown name is logged as
given (truncated) so an operator can see someone trying names.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

import aiohttp_session
from aiohttp import web

from bot.console.agents import password_matches
from bot.console.auth import csrf_token
from bot.context import AGENTS, CLOCK, SETTINGS, STORE
from bot.storage.agents import AgentRecord

log = logging.getLogger(__name__)
WRONG = "用户名或密码错误 (Wrong name or password)"


@dataclass(frozen=True)
class Refused:
    status: int  # 401 wrong name or password (or disabled), 429 too many attempts
    reason: str
    retry_after: int | None = None


async def attempt(request: web.Request, name: str, password: str) -> AgentRecord | Refused:
    """The agent if ``name`` and ``password`` are right and the agent may sign in."""
    typed = name.strip().lower()
    address = request.remote or "unknown"
    wait = await _limit(request, typed, address)
    if wait > 0:
        log.warning(
            "console sign-in refused for %r from %s: too many attempts", typed[:64], address
        )
        minutes = max(1, math.ceil(wait / 60))
        return Refused(
            429,
            f"尝试次数过多，请 {minutes} 分钟后再试"
            f" (Too many sign-in attempts: try again in {minutes} min)",
            retry_after=math.ceil(wait),
        )
    agent = await request.app[AGENTS].get(typed)
    if not await password_matches(agent, password):
        log.warning("console sign-in failed for %r from %s", typed[:64], address)
        return Refused(401, WRONG)
    assert agent is not None  # password_matches is False without an agent
    if agent.disabled:
        # The same answer as a wrong password: the form does not tell who is disabled.
        log.warning("console sign-in refused for %s from %s: disabled", agent.name, address)
        return Refused(401, WRONG)
    log.info("console sign-in: %s (%s) from %s", agent.name, agent.role, address)
    return agent


async def _limit(request: web.Request, name: str, address: str) -> float:
    """Seconds to wait before another attempt (0: go on; one token of each bucket taken)."""
    settings, store = request.app[SETTINGS], request.app[STORE]
    now = request.app[CLOCK].now()
    rate = 1.0 / settings.login_refill_s
    wait = await store.take_tokens(
        f"login:ip:{_digest(address)}", rate, settings.login_burst_per_ip, now
    )
    if wait > 0:
        return wait
    return await store.take_tokens(
        f"login:name:{_digest(name)}", rate, settings.login_burst_per_name, now
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


async def start_session(request: web.Request, agent: AgentRecord) -> str:
    """A fresh session for ``agent`` (whatever the browser had before); its CSRF token."""
    session = await aiohttp_session.new_session(request)
    session["agent"] = agent.name
    session["gen"] = agent.generation
    session["seen"] = int(request.app[CLOCK].now().timestamp())
    return csrf_token(session)


async def end_session(request: web.Request, agent: AgentRecord) -> None:
    session = await aiohttp_session.get_session(request)
    session.invalidate()
    log.info("console sign-out: %s", agent.name)

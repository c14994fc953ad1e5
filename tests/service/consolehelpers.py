"""The console in a test: an app with agents of its own, and signing in through its API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.clock import Clock
from bot.console.agents import add_agent
from bot.storage.agents import AgentStore, MemoryAgentStore
from bot.storage.base import Store
from intents import Understander
from tests.service.apphelpers import settings

PASSWORD = "correct horse battery"
SESSION_KEY = "0Yj5DmnCmhlIxZqJ4sh8W8jnGRJaTz9Rd5tJDyHhN3A="  # a Fernet key for tests only
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def agents_with(*people: tuple[str, str]) -> MemoryAgentStore:
    """A memory store holding (name, role) agents, each with PASSWORD."""
    store = MemoryAgentStore()
    for name, role in people:
        await add_agent(store, name, role, PASSWORD, T0)  # type: ignore[arg-type]
    return store


@asynccontextmanager
async def console(
    nlu: Understander,
    agents: AgentStore | None = None,
    store: Store | None = None,
    clock: Clock | None = None,
    **overrides: Any,
) -> AsyncIterator[TestClient[Any, Any]]:
    if agents is None:
        agents = await agents_with(("li.na", "agent"), ("boss", "supervisor"))
    overrides.setdefault("session_key", SESSION_KEY)
    app = create_app(settings(**overrides), store=store, nlu=nlu, agents=agents, clock=clock)
    async with TestClient(TestServer(app)) as c:
        yield c


async def sign_in(c: TestClient[Any, Any], name: str = "li.na", password: str = PASSWORD) -> str:
    """Signs in through the JSON API; the session's CSRF token."""
    r = await c.post("/api/console/login", json={"name": name, "password": password})
    assert r.status == 200, await r.text()
    token: str = (await r.json())["csrf_token"]
    return token


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@asynccontextmanager
async def second_browser(c: TestClient[Any, Any]) -> AsyncIterator[ClientSession]:
    """Another agent on the same service: a client with a cookie jar of its own."""
    jar = CookieJar(unsafe=True)  # the test server is 127.0.0.1: cookies for an IP address
    async with ClientSession(base_url=c.make_url(""), cookie_jar=jar) as s:
        yield s


async def sign_in_as(s: ClientSession, name: str, password: str = PASSWORD) -> str:
    r = await s.post("/api/console/login", json={"name": name, "password": password})
    assert r.status == 200, await r.text()
    token: str = (await r.json())["csrf_token"]
    return token

"""The console's sign-in (issue 11): sessions, the guard, CSRF, roles, attempt limits."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet
from yarl import URL

from bot.clock import Clock
from bot.console.agents import set_disabled, set_password
from bot.console.app import DEMO_LOGINS
from bot.console.auth import safe_next
from bot.context import AGENTS
from bot.storage.base import Store
from intents import Understander
from tests.service.consolehelpers import (
    PASSWORD,
    T0,
    agents_with,
    console,
    form_token,
    sign_in,
)


async def _me(c: TestClient[Any, Any]) -> int:
    return (await c.get("/api/console/me")).status


async def test_api_sign_in_sets_a_safe_cookie_and_me_answers(nlu: Understander) -> None:
    async with console(nlu) as c:
        r = await c.post("/api/console/login", json={"name": " Li.Na ", "password": PASSWORD})
        assert r.status == 200
        body = await r.json()
        assert body["agent"]["name"] == "li.na" and body["agent"]["role"] == "agent"
        assert "password_hash" not in body["agent"]
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("smsbot_console=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=86400" in cookie
        assert "Secure" not in cookie  # not configured (a test over http)
        me = await c.get("/api/console/me")
        assert me.status == 200
        assert (await me.json()) == body


async def test_secure_cookie_when_configured(nlu: Understander) -> None:
    async with console(nlu, session_cookie_secure=True, session_max_age_s=600) as c:
        r = await c.post("/api/console/login", json={"name": "li.na", "password": PASSWORD})
        assert "Secure" in r.headers["Set-Cookie"] and "Max-Age=600" in r.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "li.na", "password": "wrong password"}, 401),
        ({"name": "nobody", "password": PASSWORD}, 401),
        ({"name": "li.na"}, 400),
        ({"name": "li.na", "password": PASSWORD, "extra": 1}, 400),
        ({"name": "li.na", "password": "x" * 10_000}, 400),
    ],
)
async def test_api_sign_in_refusals(nlu: Understander, body: dict[str, Any], status: int) -> None:
    async with console(nlu) as c:
        r = await c.post("/api/console/login", json=body)
        assert r.status == status
        assert (await r.json())["status"] == status
        assert "Set-Cookie" not in r.headers
        assert await _me(c) == 401


async def test_bad_json_is_a_400_not_a_500(nlu: Understander) -> None:
    async with console(nlu) as c:
        json_type = {"Content-Type": "application/json"}
        r = await c.post("/api/console/login", data=b"{not json", headers=json_type)
        assert r.status == 400
        # JSON as text/plain (what a cross-site form can send): refused, nobody signed in.
        body = b'{"name": "li.na", "password": "' + PASSWORD.encode() + b'"}'
        r = await c.post("/api/console/login", data=body, headers={"Content-Type": "text/plain"})
        assert r.status == 400
        assert "application/json" in (await r.json())["error"]
        assert await _me(c) == 401


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded; charset=no-such-codec",
        "application/x-www-form-urlencoded; charset=utf-16",
        "text/plain",
    ],
)
async def test_unreadable_forms_are_4xx_never_500(nlu: Understander, content_type: str) -> None:
    async with console(nlu) as c:
        token = form_token(await (await c.get("/console/login")).text())
        body = b"name=li.na&password=\xff\xfe\x80&csrf_token=" + token.encode()
        for headers in ({}, {"X-CSRF-Token": token}):
            r = await c.post(
                "/console/login", data=body, headers={"Content-Type": content_type, **headers}
            )
            assert 400 <= r.status < 500, (headers, r.status)
        assert await _me(c) == 401


async def test_sign_ins_are_logged_without_passwords(
    nlu: Understander, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.console")
    async with console(nlu) as c:
        await c.post("/api/console/login", json={"name": "li.na", "password": "wrong password"})
        await sign_in(c)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "sign-in failed for 'li.na'" in text
    assert "console sign-in: li.na (agent)" in text
    assert PASSWORD not in text and "wrong password" not in text


async def test_console_routes_need_a_session(nlu: Understander) -> None:
    async with console(nlu) as c:
        for path in ("/api/console/me", "/api/console/agents", "/api/console/nothing-here"):
            r = await c.get(path)
            assert r.status == 401, path
            assert (await r.json())["error"].startswith("not signed in")
        r = await c.post("/api/console/logout")
        assert r.status == 401
        r = await c.get("/console", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/console/login"
        r = await c.get("/console/queue?case=7", allow_redirects=False)
        assert r.status == 303
        location = URL(r.headers["Location"])
        assert location.path == "/console/login"
        assert location.query["next"] == "/console/queue?case=7"
        r = await c.get("/console/login")
        assert r.status == 200 and 'name="csrf_token"' in await r.text()
        assert (await c.get("/healthz")).status == 200  # other paths: untouched


async def test_form_sign_in_shell_and_sign_out(nlu: Understander) -> None:
    async with console(nlu) as c:
        page = await c.get("/console/login?next=/console%3Ftab%3Dqueue")
        token = form_token(await page.text())
        form = {"csrf_token": token, "name": "li.na", "password": "nope nope nope"}
        r = await c.post("/console/login", data={**form, "next": "/console?tab=queue"})
        assert r.status == 401
        assert "用户名或密码错误" in await r.text() and "Wrong name or password" in await r.text()
        form["password"] = PASSWORD
        r = await c.post(
            "/console/login", data={**form, "next": "/console?tab=queue"}, allow_redirects=False
        )
        assert r.status == 303 and r.headers["Location"] == "/console?tab=queue"
        shell = await c.get("/console")
        html = await shell.text()
        assert shell.status == 200 and shell.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in shell.headers["Content-Security-Policy"]
        assert 'id="agent-name">li.na<' in html and "客服 Agent" in html
        for tab in ("队列", "未匹配", "Queue", "Unmatched"):
            assert tab in html
        assert "看板" not in html  # the dashboard is for supervisors: no tab for an agent
        # Signed in: the sign-in page sends the agent on.
        r = await c.get("/console/login", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/console"
        r = await c.post(
            "/console/logout", data={"csrf_token": form_token(html)}, allow_redirects=False
        )
        assert r.status == 303 and r.headers["Location"] == "/console/login?bye=1"
        assert await _me(c) == 401
        assert "您已退出登录" in await (await c.get("/console/login?bye=1")).text()


async def test_csrf_missing_or_wrong_is_403_and_changes_nothing(nlu: Understander) -> None:
    async with console(nlu) as c:
        token = await sign_in(c)
        for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
            r = await c.post("/api/console/logout", headers=headers)
            assert r.status == 403, headers
            assert "CSRF token" in (await r.json())["error"]
            assert await _me(c) == 200  # still signed in
        # A form without (or with another session's) token: an HTML page saying why.
        for data in ({}, {"csrf_token": "other"}):
            r = await c.post("/console/logout", data=data, allow_redirects=False)
            assert r.status == 403 and r.content_type == "text/html"
            assert "CSRF token" in await r.text()
            assert await _me(c) == 200
        r = await c.post("/api/console/logout", headers={"X-CSRF-Token": token})
        assert r.status == 204
        assert await _me(c) == 401


async def test_the_sign_in_form_needs_its_token(nlu: Understander) -> None:
    async with console(nlu) as c:
        r = await c.post("/console/login", data={"name": "li.na", "password": PASSWORD})
        assert r.status == 403
        assert await _me(c) == 401


async def test_no_open_redirect_after_sign_in() -> None:
    assert safe_next("/console/queue?x=1") == "/console/queue?x=1"
    for bad in (
        "https://evil.example",
        "//evil.example",
        "/consolex",
        "/console//evil",
        "/\\x",
        "",
    ):
        assert safe_next(bad) == "/console", bad


async def test_an_agent_cannot_reach_a_supervisor_route(nlu: Understander) -> None:
    async with console(nlu) as c:
        await sign_in(c, "li.na")
        r = await c.get("/api/console/agents")
        assert r.status == 403
        assert (await r.json())["error"] == "主管才可操作 (only a supervisor may do this)"
    async with console(nlu) as c:
        await sign_in(c, "boss")
        r = await c.get("/api/console/agents")
        assert r.status == 200
        names = [(a["name"], a["role"]) for a in (await r.json())["agents"]]
        assert names == [("boss", "supervisor"), ("li.na", "agent")]


async def test_disabling_or_a_new_password_ends_sessions(nlu: Understander) -> None:
    async with console(nlu) as c:
        agents = c.app[AGENTS]
        await sign_in(c)
        await set_disabled(agents, "li.na", True, T0 + timedelta(hours=1))
        assert await _me(c) == 401
        r = await c.post("/api/console/login", json={"name": "li.na", "password": PASSWORD})
        assert r.status == 401  # disabled: the same answer as a wrong password
        await set_disabled(agents, "li.na", False, T0 + timedelta(hours=2))
        await sign_in(c)
        await set_password(agents, "li.na", "a brand new password", T0 + timedelta(hours=3))
        assert await _me(c) == 401
        r = await c.get("/console", allow_redirects=False)
        assert r.status == 303
        await sign_in(c, password="a brand new password")
        assert await _me(c) == 200


async def test_a_session_ends_after_its_idle_time(nlu: Understander) -> None:
    clock = Clock()
    async with console(nlu, clock=clock, session_idle_s=600) as c:
        await sign_in(c)
        for _ in range(3):  # each request renews it: 3 × 9 minutes is longer than 10
            clock.advance(timedelta(minutes=9))
            assert await _me(c) == 200
        clock.advance(timedelta(minutes=10, seconds=1))
        assert await _me(c) == 401
        assert (await c.get("/console", allow_redirects=False)).status == 303


async def test_too_many_attempts_is_429_with_retry_after(nlu: Understander, store: Store) -> None:
    async with console(nlu, store=store, login_burst_per_name=3, login_refill_s=120) as c:
        wrong = {"name": "li.na", "password": "not the password"}
        for _ in range(3):
            assert (await c.post("/api/console/login", json=wrong)).status == 401
        r = await c.post("/api/console/login", json={"name": "li.na", "password": PASSWORD})
        assert r.status == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 120
        assert "Too many sign-in attempts" in (await r.json())["error"]
        assert await _me(c) == 401
        # The form says so too, in Chinese and English.
        token = form_token(await (await c.get("/console/login")).text())
        r = await c.post("/console/login", data={"csrf_token": token, **wrong})
        assert r.status == 429 and "Retry-After" in r.headers
        assert "尝试次数过多" in await r.text()
        # Another agent from the same address is not held up by li.na's limit.
        await sign_in(c, "boss")


async def test_per_address_limit_covers_many_names(nlu: Understander) -> None:
    async with console(nlu, login_burst_per_ip=4) as c:
        for i in range(4):
            r = await c.post("/api/console/login", json={"name": f"guess{i}", "password": "x"})
            assert r.status == 401
        r = await c.post("/api/console/login", json={"name": "li.na", "password": PASSWORD})
        assert r.status == 429


async def test_limit_is_shared_by_processes_on_one_redis(
    nlu: Understander, redis_server: Any
) -> None:
    """Two services on one Redis (two processes in production) count attempts together."""
    import redis.asyncio as aioredis

    from bot.storage.redis import RedisStore

    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.flushdb()
    one, two = RedisStore.from_url(redis_server.url), RedisStore.from_url(redis_server.url)
    try:
        async with (
            console(nlu, store=one, login_burst_per_name=2) as a,
            console(nlu, store=two, login_burst_per_name=2) as b,
        ):
            wrong = {"name": "li.na", "password": "not the password"}
            assert (await a.post("/api/console/login", json=wrong)).status == 401
            assert (await b.post("/api/console/login", json=wrong)).status == 401
            assert (await a.post("/api/console/login", json=wrong)).status == 429
            assert (await b.post("/api/console/login", json=wrong)).status == 429
    finally:
        await one.close()
        await two.close()


async def test_a_shared_session_key_lets_every_process_read_the_session(
    nlu: Understander,
) -> None:
    agents = await agents_with(("li.na", "agent"))
    async with console(nlu, agents=agents) as a, console(nlu, agents=agents) as b:
        await sign_in(a)
        cookie = a.session.cookie_jar.filter_cookies(a.make_url("/"))["smsbot_console"].value
        r = await b.get("/api/console/me", headers={"Cookie": f"smsbot_console={cookie}"})
        assert r.status == 200
    other_key = Fernet.generate_key().decode()
    async with console(nlu, agents=agents, session_key=other_key) as c:
        r = await c.get("/api/console/me", headers={"Cookie": f"smsbot_console={cookie}"})
        assert r.status == 401  # another key: the cookie means nothing


async def test_without_a_session_key_a_warning_and_no_key_in_the_log(
    nlu: Understander, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with console(nlu, session_key=None) as c:
        await sign_in(c)
        assert await _me(c) == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.console.auth"]
    assert any("SMSBOT_SESSION_KEY is not set" in w for w in warnings)


async def test_demo_mode_makes_a_demo_agent_and_supervisor(nlu: Understander) -> None:
    async with console(nlu, demo=True, public_url=None, host="127.0.0.1") as c:
        logins = c.app[DEMO_LOGINS]
        assert set(logins) == {"demo", "demo-lead"}
        assert all(len(p) >= 10 for p in logins.values())
        await sign_in(c, "demo-lead", logins["demo-lead"])
        assert (await c.get("/api/console/agents")).status == 200

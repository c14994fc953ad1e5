"""The console's sign-in and shell in a real browser (Debian's chromium driven by Playwright),
at a laptop's and a phone's size. Screenshots go to the test's tmp dir and to
``tests.service.browser.SHOTS`` (looked at by a person after a change to the pages)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, expect

from bot.app import create_app
from bot.console.agents import add_agent
from bot.storage.agents import MemoryAgentStore
from intents import Understander
from tests.service.apphelpers import settings
from tests.service.browser import (
    chromium,
    needs_chromium,
    no_sideways_scroll,
    served,
    shot,
    watched_page,
)
from tests.service.consolehelpers import PASSWORD, SESSION_KEY, T0

SIZES = {"desktop": (1366, 768), "phone": (390, 844)}

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def base_url(nlu: Understander) -> Iterator[str]:
    """The app with two agents on a free loopback port, served from its own thread."""
    agents = MemoryAgentStore()

    def make_app(port: int) -> web.Application:
        return create_app(
            settings(port=port, public_url=None, session_key=SESSION_KEY, login_burst_per_name=50),
            nlu=nlu,
            agents=agents,
        )

    async def add_agents() -> None:
        for name, role in (("li.na", "agent"), ("wang.lei.supervisor", "supervisor")):
            await add_agent(agents, name, role, PASSWORD, T0)  # type: ignore[arg-type]

    with served(make_app, add_agents) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(params=sorted(SIZES))
def page(request: pytest.FixtureRequest, browser: Browser, base_url: str) -> Iterator[Page]:
    """A fresh browser context at one size; fails on a script error or an outside request."""
    # The refusals on purpose: the wrong password, the stale form.
    expected = {(401, f"{base_url}/console/login"), (403, f"{base_url}/console/logout")}
    with watched_page(
        browser, base_url, SIZES[request.param], lambda status, url: (status, url) in expected
    ) as pg:
        yield pg


def test_sign_in_see_the_empty_queue_sign_out(page: Page, base_url: str, tmp_path: Path) -> None:
    page.goto(f"{base_url}/console")
    expect(page).to_have_url(f"{base_url}/console/login")
    expect(page.locator("h1")).to_contain_text("坐席台")
    expect(page.locator("#name")).to_be_focused()
    no_sideways_scroll(page)
    shot(page, tmp_path, "login")

    page.fill("#name", "li.na")
    page.fill("#password", "not the password")
    page.click("#sign-in")
    expect(page.locator("#error")).to_contain_text("用户名或密码错误")
    expect(page.locator("#error")).to_contain_text("Wrong name or password")
    expect(page.locator("#name")).to_have_value("li.na")  # kept; the password is not
    expect(page.locator("#password")).to_have_value("")
    expect(page.locator("#password")).to_be_focused()
    shot(page, tmp_path, "login-error")

    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    expect(page).to_have_url(f"{base_url}/console")
    expect(page.locator("#agent-name")).to_have_text("li.na")
    expect(page.locator("#agent-role")).to_have_text("客服 Agent")
    tabs = page.locator("nav.tabs .tab")
    expect(tabs).to_have_count(2)  # the dashboard's tab is for supervisors
    expect(tabs.nth(0)).to_contain_text("队列")
    expect(tabs.nth(0)).to_have_attribute("aria-current", "page")
    expect(tabs.nth(1)).to_contain_text("未匹配")
    expect(page.locator("#no-cases")).to_contain_text("No cases here")
    expect(page.locator("#live-dot")).to_have_attribute("data-state", "on")  # the feed is live
    expect(page.locator("#sign-out")).to_be_visible()
    no_sideways_scroll(page)
    # Everything in the header is inside the window (a long name must not push it out).
    for selector in ("#agent-name", "#agent-role", "#sign-out"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0
        assert box["x"] + box["width"] <= page.evaluate("window.innerWidth"), selector
    shot(page, tmp_path, "shell")

    page.click("#sign-out")
    expect(page).to_have_url(f"{base_url}/console/login?bye=1")
    expect(page.locator("#notice")).to_contain_text("You have signed out")
    page.goto(f"{base_url}/console")
    expect(page).to_have_url(f"{base_url}/console/login")  # the session is gone


def test_a_supervisor_sees_the_role_and_a_long_name_fits(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    page.goto(f"{base_url}/console/login?next=/console")
    page.fill("#name", "wang.lei.supervisor")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page.locator("#agent-role")).to_have_text("主管 Supervisor")
    expect(page.locator("#agent-role")).to_have_attribute("data-role", "supervisor")
    no_sideways_scroll(page)
    shot(page, tmp_path, "shell-supervisor")


def test_a_stale_form_is_refused_with_a_way_back(page: Page, base_url: str, tmp_path: Path) -> None:
    page.goto(f"{base_url}/console/login")
    page.fill("#name", "li.na")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page.locator("#agent-name")).to_have_text("li.na")
    # As if the page were from an older session: its CSRF token is not this session's.
    page.evaluate("document.querySelector('input[name=csrf_token]').value = 'stale'")
    page.click("#sign-out")
    expect(page.locator("#error")).to_contain_text("CSRF token wrong")
    expect(page.locator("h1")).to_contain_text("无权操作")
    no_sideways_scroll(page)
    shot(page, tmp_path, "csrf-refused")
    page.click("text=返回坐席台")
    expect(page.locator("#agent-name")).to_have_text("li.na")  # still signed in

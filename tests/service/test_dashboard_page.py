"""The results dashboard: who may see it (supervisors; an agent is refused, nobody is sent to
sign in), bad queries refused with the reason, the JSON and CSV after the scripted journey
(tests/service/test_dashboard_figures.py), the page in Chromium with its charts drawn, and
the standalone report opened from a file with the network blocked. Screenshots at a laptop's
and a phone's size go to ``tests.service.browser.SHOTS`` to be looked at."""

from __future__ import annotations

import asyncio
import csv
import html
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, Route, expect

from bot.app import create_app
from bot.clock import Clock
from bot.console.agents import add_agent
from bot.reports import collect, render
from bot.storage.agents import MemoryAgentStore
from bot.storage.base import Store
from bot.storage.memory import MemoryStore
from intents import Understander
from tests.service.browser import chromium, needs_chromium, no_sideways_scroll, served, shot
from tests.service.campaignhelpers import service
from tests.service.consolehelpers import PASSWORD, SESSION_KEY, T0, console, sign_in
from tests.service.test_dashboard_figures import DAY, journey

pytestmark = pytest.mark.timeout(180)
T = TypeVar("T")
API = "/api/console/dashboard"
DESKTOP, PHONE = (1366, 768), (390, 844)
CHARTS = ("chart-funnel", "chart-days", "chart-intents", "chart-handoffs", "chart-templates")


def in_own_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Runs ``coro`` on a loop of its own thread (a browser test's thread has pytest's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


async def journeyed(nlu: Understander) -> Store:
    store = MemoryStore()
    async with service(nlu, store, DAY) as s:
        await journey(s)
    return store


async def test_only_supervisors_see_it_and_bad_queries_are_400(nlu: Understander) -> None:
    store = await journeyed(nlu)
    clock = Clock(DAY + timedelta(hours=2) - datetime.now(UTC))
    async with console(nlu, store=store, clock=clock) as c:
        for path in (API, API + ".csv"):
            r = await c.get(path)
            assert r.status == 401, path
        r = await c.get("/console/dashboard", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/console/login")

        await sign_in(c, "li.na")  # an agent
        for path in (API, API + ".csv", "/console/dashboard"):
            r = await c.get(path)
            assert r.status == 403, path
            assert "supervisor" in await r.text()
        assert "/console/dashboard" not in await (await c.get("/console")).text()  # no tab

        await sign_in(c, "boss")
        assert 'href="/console/dashboard"' in await (await c.get("/console")).text()
        r = await c.get(API)
        assert r.status == 200
        body = await r.json()
        assert (body["start"], body["end"]) == ("2026-11-12", "2026-11-25")  # 14 Beijing days
        assert body["funnel"]["reminded"] == 5 and body["funnel"]["recovered"] == "3200.00"
        r = await c.get(API + "?from=2026-11-25&to=2026-11-25&campaign=november")
        one = await r.json()
        assert (one["accounts"], one["campaign_name"], len(one["days"])) == (5, "november", 1)

        r = await c.get(API + ".csv?from=2026-11-20&to=2026-11-25")
        assert r.status == 200 and r.content_type == "text/csv"
        assert "attachment" in r.headers["Content-Disposition"]
        raw = await r.read()
        assert raw.startswith(b"\xef\xbb\xbf")
        table = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
        figures = {(t["section"], t["key"], t["metric"]): t["value"] for t in table}
        assert figures[("funnel", "total", "paid")] == "1"
        assert figures[("day", "2026-11-25", "replied")] == "4"
        assert figures[("gate_blocked", "CN-OPTOUT-01", "messages")] == "1"

        bad = {
            "?from=2026-02-30": "from: not a date",
            "?to=tomorrow": "to: not a date",
            "?from=2026-11-25&to=2026-11-01": "is after",
            "?from=2020-01-01&to=2026-11-25": "at most 366 days",
            "?campaign=nope": "no campaign with id or name 'nope'",
            "?days=7": "unknown query parameter(s): days",
        }
        for query, why in bad.items():
            for path in (API, API + ".csv", "/console/dashboard"):
                r = await c.get(path + query)
                assert r.status == 400, (path, query)
                assert why in html.unescape(await r.text()), (path, query)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def dashboard_url(nlu: Understander) -> Iterator[str]:
    store = in_own_loop(journeyed(nlu))
    agents = MemoryAgentStore()
    clock = Clock(DAY + timedelta(hours=2) - datetime.now(UTC))

    def make_app(port: int) -> web.Application:
        from tests.service.apphelpers import settings

        app_settings = settings(port=port, session_key=SESSION_KEY)
        return create_app(app_settings, store=store, nlu=nlu, agents=agents, clock=clock)

    async def add_boss() -> None:
        await add_agent(agents, "boss", "supervisor", PASSWORD, T0)

    with served(make_app, add_boss) as url:
        yield url


def drawn(page: Page, chart: str) -> dict[str, Any]:
    """What a chart holds and whether its canvas has pixels that are not blank."""
    found: dict[str, Any] = page.evaluate(
        """(id) => {
            const chart = window.smsbotCharts && window.smsbotCharts[id];
            const canvas = document.getElementById(id);
            const ctx = canvas.getContext("2d");
            const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let inked = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i] > 0) inked++;
            const values = chart ? chart.data.datasets.flatMap((d) => d.data) : [];
            return {inked, points: values.filter((v) => v).length,
                    labels: chart ? chart.data.labels.length : 0};
        }""",
        chart,
    )
    return found


def check_charts(page: Page) -> None:
    for chart in CHARTS:
        expect(page.locator(f"#{chart}")).to_have_attribute("data-drawn", "yes")
        got = drawn(page, chart)
        assert got["inked"] > 1000 and got["points"] > 0, (chart, got)
    gate = drawn(page, "chart-gate")
    assert gate["labels"] == 1 and gate["points"] == 1, gate  # CN-OPTOUT-01 blocked once


@needs_chromium
@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_page_draws_its_charts(
    browser: Browser, dashboard_url: str, size: tuple[int, int], tmp_path: Path
) -> None:
    url = dashboard_url
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda r: None if r.url.startswith(url) else problems.append(r.url))
    try:
        page.goto(f"{url}/console/login?next=/console/dashboard")
        page.fill("#name", "boss")
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        expect(page.locator("main[data-page=dashboard]")).to_be_visible()
        expect(page.locator('[data-kpi="reminded"] .v')).to_have_text("5")
        expect(page.locator('[data-kpi="recovered"] .v')).to_have_text("¥3200.00")
        check_charts(page)
        expect(page.locator("#by-campaign")).to_contain_text("november")
        no_sideways_scroll(page)
        shot(page, tmp_path, "dashboard")
        # The form narrows to one campaign and one day; the CSV link follows the query.
        page.fill("#from", "2026-11-25")
        page.select_option("#campaign", label="second")
        page.click("#show")
        expect(page.locator("#range-title")).to_contain_text("second")
        expect(page.locator('[data-kpi="reminded"] .v')).to_have_text("0")
        assert "campaign=" in (page.locator("#csv").get_attribute("href") or "")
        assert problems == []
    finally:
        context.close()


@needs_chromium
@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_report_file_draws_offline(
    browser: Browser, nlu: Understander, size: tuple[int, int], tmp_path: Path
) -> None:
    async def figures() -> str:
        store = await journeyed(nlu)
        d = await collect.dashboard(store, *collect.parse_range(None, None, DAY), DAY)
        return render.standalone_html(d)

    report = tmp_path / "report.html"
    report.write_text(in_own_loop(figures()), encoding="utf-8")
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    asked: list[str] = []

    def block(route: Route) -> None:
        """Nothing but the file itself: the network is cut."""
        if route.request.url.startswith("file://"):
            route.continue_()
            return
        asked.append(route.request.url)
        route.abort()

    context.route("**/*", block)
    context.set_offline(True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(report.as_uri())
        check_charts(page)
        no_sideways_scroll(page)
        shot(page, tmp_path, "report")
        assert (asked, errors) == ([], [])
    finally:
        context.close()

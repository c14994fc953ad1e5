"""The /simulator page in a real browser (Debian's chromium driven by Playwright).

The app runs on a loopback port in a background thread with its own event loop; Playwright's
sync API drives the page from the test. The clock is pinned to a Wednesday noon in Beijing so
"明天" and "advance one day" land the same way whatever the hour the suite runs at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    expect,
)

from bot.app import create_app
from bot.clock import Clock
from bot.settings import load_settings
from intents import Understander
from tests.service.browser import SHOTS, chromium, needs_chromium, served, watched_page

START = datetime.fromisoformat("2026-12-02T12:00:00+08:00")  # a Wednesday, noon in Beijing
SCREENSHOT = SHOTS / "simulator.png"

pytestmark = needs_chromium


@pytest.fixture(scope="session")
def nlu() -> Understander:
    return Understander.load()


@pytest.fixture(scope="module")
def base_url(nlu: Understander) -> Iterator[str]:
    """The demo app on a free loopback port, served from its own thread and event loop."""
    clock = Clock(START - datetime.now(UTC))

    def make_app(port: int) -> web.Application:
        return create_app(load_settings(demo=True, port=port, redis_url=None), nlu=nlu, clock=clock)

    with served(make_app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A fresh page at 1280×800 that fails the test on a script error or an outside request."""
    # Only the API may refuse (on purpose, in the tests); the page loads nothing else.
    with watched_page(
        browser,
        base_url,
        (1280, 800),
        lambda status, url: url.startswith(f"{base_url}/simulator/api/"),
    ) as pg:
        yield pg


def bubble(page: Page, template: str) -> Locator:
    return page.locator(f'#transcript .msg.bot[data-template="{template}"]')


def test_play_a_borrower_promise_reminder_and_opt_out(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/simulator")
    page.select_option("#account", "demo-0002")
    expect(page).to_have_url(re.compile(r"#demo-0002$"))
    expect(page.locator("#info-name")).to_contain_text("李娜")

    # The first reminder went out at start-up, with the masked name.
    first = bubble(page, "first_reminder")
    expect(first).to_be_visible()
    expect(first).to_contain_text("李*")
    expect(first.locator(".tpl")).to_have_text("first_reminder")
    # Where it is in the send path: the sandbox carrier took it.
    expect(first.locator(".delivery-tag")).to_have_attribute("data-state", "sent")
    expect(first.locator(".delivery-tag")).to_contain_text("已发送 (sent")
    expect(page.locator("#state")).to_have_attribute("data-state", "awaiting_reply")
    expect(page.locator("#clock")).to_contain_text("2026-12-02")

    # A dated promise with an amount (sent with Enter).
    page.fill("#reply-text", "明天还500")
    page.press("#reply-text", "Enter")
    expect(page.locator("#transcript .msg.borrower").last).to_contain_text("明天还500")
    expect(page.locator("#intent")).to_have_attribute("data-intent", "promise_to_pay")
    expect(page.locator("#intent")).to_contain_text("承诺还款")
    expect(page.locator("#intents li").first).to_contain_text("promise_to_pay")
    expect(page.locator("#intents li .score").first).to_have_text(
        re.compile(r"^0\.9\d\d$|^1\.000$")
    )
    expect(page.locator('#entities [data-entity="date"]')).to_contain_text("2026-12-03")
    expect(page.locator('#entities [data-entity="amount"]')).to_contain_text("500.00")
    expect(page.locator("#state")).to_contain_text("promised")
    expect(page.locator("#promise")).to_contain_text("2026-12-03")
    expect(page.locator('#timers [data-timer="promise_day"]')).to_be_visible()
    confirm = bubble(page, "promise_confirm_amount")
    expect(confirm).to_contain_text("500.00元")
    expect(page.locator("#reply-text")).to_have_value("")
    expect(page.locator("#reply-text")).to_be_focused()

    # One day later: the reminder on the promised day.
    page.click("#advance-1d")
    expect(bubble(page, "promise_day_reminder_amount")).to_contain_text("约定还款500.00元")
    expect(page.locator("#clock")).to_contain_text("2026-12-03")
    expect(page.locator('#timers [data-timer="promise_day"]')).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("1d")

    # The API's refusals are shown, not swallowed.
    page.fill("#advance-custom", "soon")
    page.click("#advance-go")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("duration")
    page.click("#error-close")
    expect(page.locator("#error")).to_be_hidden()

    # TD: opted out, confirmed once, the conversation closes.
    page.fill("#reply-text", "TD")
    page.click("#send")
    expect(page.locator("#intent")).to_have_attribute("data-intent", "stop")
    expect(page.locator("#state")).to_have_attribute("data-state", "opted_out")
    expect(page.locator('#flags [data-flag="opted_out"]')).to_be_visible()
    expect(bubble(page, "stop_confirm")).to_contain_text("退订")
    expect(page.locator('#transcript .sys[data-kind="close"]')).to_contain_text("opted_out")
    expect(page.locator("#timers")).to_contain_text("无")
    page.screenshot(path=str(SCREENSHOT))


def test_payment_and_errors_are_shown(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/simulator#demo-0003")
    expect(page.locator("#account")).to_have_value("demo-0003")
    expect(bubble(page, "first_reminder")).to_contain_text("王*")

    page.fill("#payment-amount", "1.234")
    page.click("#pay")
    expect(page.locator("#error")).to_contain_text("decimal places")

    page.fill("#payment-amount", "860.50")
    page.press("#payment-amount", "Enter")
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#paid-total")).to_contain_text("860.50")
    expect(page.locator('#transcript .sys[data-kind="payment"]')).to_contain_text("860.50")
    expect(page.locator("#state")).to_have_attribute("data-state", "paid")


def test_narrow_window_stacks_the_panels(page: Page, base_url: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base_url}/simulator#demo-0005")
    expect(bubble(page, "first_reminder")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing sticks out sideways
    chat = page.locator(".chat").bounding_box()
    state = page.locator("#state").bounding_box()
    assert chat is not None and state is not None and state["y"] > chat["y"] + chat["height"]
    page.screenshot(path=str(SCREENSHOT.with_name("simulator-narrow.png")), full_page=True)


def test_a_blocked_message_is_marked_on_its_bubble(page: Page, base_url: str) -> None:
    # Blocking needs a second account on an opted-out phone; the page's part is shown with a
    # crafted view: the "blocked" event names the message the outbound rules stopped.
    at = "2026-12-02T04:00:00+00:00"
    view = {
        "now": at,
        "account_id": "demo-0001",
        "tz": "Asia/Shanghai",
        "state": "awaiting_reply",
        "flags": [],
        "timers": {},
        "promise": None,
        "paid_total": "0",
        "last_understanding": None,
        "sent": [],
        "transcript": [
            {
                "at": at,
                "who": "bot",
                "text": "【XX金融】提醒",
                "template": "follow_up",
                "message_id": "m1",
            },
            {
                "at": at,
                "who": "system",
                "text": "blocked: …",
                "kind": "blocked",
                "detail": {"message_id": "m1", "reason": "opted_out"},
            },
        ],
    }
    page.route(
        f"{base_url}/simulator/api/state/demo-0001",
        lambda route: route.fulfill(json=view),
    )
    page.goto(f"{base_url}/simulator#demo-0001")
    expect(bubble(page, "follow_up")).to_have_class(re.compile(r"\bblocked\b"))
    expect(bubble(page, "follow_up")).to_contain_text("blocked")
    expect(page.locator('#transcript .sys[data-kind="blocked"]')).to_contain_text("opted_out")


def test_deferral_shows_local_time_clears_when_sent_and_supersession_says_why(
    page: Page, base_url: str
) -> None:
    """Issue 16: the deferral tag is in the borrower's time, goes once the message left, and a
    dropped message says why. Crafted views: the page's part only (the server's is tested in
    tests/compliance/test_gate_service.py)."""
    at = "2026-12-02T13:30:00+00:00"  # 21:30 in Beijing
    held = {"verdict": "defer", "message_id": "m1", "until": "2026-12-03T00:00:00+00:00",
            "until_local": "12-03 08:00", "rules": ["CN-TIME-01"]}  # fmt: skip
    transcript = [
        {"at": at, "who": "bot", "text": "【XX金融】提醒", "template": "follow_up", "message_id": "m1"},
        {"at": at, "who": "system", "text": "gate: …", "kind": "gate", "detail": held},
        {"at": at, "who": "bot", "text": "【XX金融】今天是您约定的还款日",
         "template": "promise_day_reminder", "message_id": "m2"},
        {"at": at, "who": "system", "text": "gate: …", "kind": "gate", "detail": {**held, "message_id": "m2"}},
        {"at": at, "who": "system", "text": "superseded: …", "kind": "superseded",
         "detail": {"message_id": "m2", "detail": "its words held on 2026-12-02 only"}},
    ]  # fmt: skip
    view = {
        "now": at, "account_id": "demo-0001", "tz": "Asia/Shanghai", "state": "awaiting_reply",
        "flags": [], "timers": {}, "promise": None, "paid_total": "0",
        "last_understanding": None, "sent": [], "transcript": transcript,
        "messages": {"m1": {"state": "deferred"}, "m2": {"state": "superseded"}},
    }  # fmt: skip
    views = [view, {**view, "messages": {**view["messages"], "m1": {"state": "sent"}}}]
    served: list[int] = []

    def fulfil(route: Any) -> None:
        served.append(1)
        route.fulfill(json=views[min(len(served), 2) - 1])

    page.route(f"{base_url}/simulator/api/state/demo-0001", fulfil)
    page.goto(f"{base_url}/simulator#demo-0001")
    expect(bubble(page, "follow_up").locator(".deferred-tag")).to_have_text(
        "延后至 12-03 08:00 (deferred)"
    )
    dropped = bubble(page, "promise_day_reminder")
    expect(dropped).to_have_class(re.compile(r"\bsuperseded\b"))
    expect(dropped).to_contain_text("its words held on 2026-12-02 only")
    expect(dropped.locator(".deferred-tag")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOT.with_name("simulator-deferred.png")), full_page=True)
    # The next refresh finds it sent: the deferral tag goes, the delivery tag says so.
    expect(bubble(page, "follow_up").locator(".deferred-tag")).to_have_count(0, timeout=20_000)
    expect(bubble(page, "follow_up").locator(".delivery-tag")).to_contain_text("已发送")


def test_a_handed_off_borrower_links_to_the_agents_console(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/simulator")
    page.select_option("#account", "demo-0004")
    link = page.locator("#console-link")
    expect(link).to_be_hidden()
    page.fill("#reply-text", "这笔钱我根本没借过，你们搞错了")
    page.press("#reply-text", "Enter")
    expect(page.locator("#state")).to_have_attribute("data-state", "with_agent")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", "/console/cases/demo-0004")
    # The link leads to the console's sign-in, then back to this case.
    page.goto(f"{base_url}{link.get_attribute('href')}")
    expect(page).to_have_url(f"{base_url}/console/login?next=/console/cases/demo-0004")

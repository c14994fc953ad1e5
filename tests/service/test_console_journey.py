"""An agent's day at the console in a real browser (Debian's chromium, Playwright): a borrower's
dispute appears in the queue without a reload, two agents race to claim it, the winner reads
the transcript with what the bot understood, answers (delivered in the sandbox), is stopped by
the gate on a threat (the rule is shown), records a promise and gives the conversation back to
the bot, which reminds on the promised day. Plus the refusals: no session, no CSRF token, an
agent reaching for a supervisor's action. Screenshots at a laptop's and a phone's size go to
``tests.service.browser.SHOTS`` to be looked at."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, expect

from bot.app import create_app
from bot.clock import Clock
from bot.console.agents import add_agent
from bot.storage.agents import MemoryAgentStore
from intents import Understander
from tests.service.apphelpers import AUTH, account, settings, twilio_form, twilio_signature
from tests.service.browser import (
    chromium,
    needs_chromium,
    no_sideways_scroll,
    served,
    shot,
    watched_page,
)
from tests.service.consolehelpers import PASSWORD, SESSION_KEY, T0

pytestmark = [needs_chromium, pytest.mark.timeout(180)]
DESKTOP, PHONE = (1366, 768), (390, 844)
# 10:00 in Beijing on Wednesday 2026-11-25: inside the contact window.
START = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
POLITE = "【XX金融】您好，我是XX消费金融客服专员，已收到您的异议，正在核实，如有疑问请致电95XXX。"
THREAT = "【XX金融】再不还钱就让你坐牢。详询95XXX。"


class Service:
    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", AUTH["Authorization"])
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def reply(self, phone: str, text: str, sid: str) -> None:
        form = twilio_form(phone, text, sid)
        sig = twilio_signature("https://sms.example.cn/webhooks/twilio", form)
        req = urllib.request.Request(
            self.url + "/webhooks/twilio", data=urlencode(form).encode(), method="POST"
        )
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        req.add_header("X-Twilio-Signature", sig)
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def sandbox(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/api/sandbox/messages")
        return found


@pytest.fixture(scope="module")
def service(nlu: Understander) -> Iterator[Service]:
    agents = MemoryAgentStore()
    clock = Clock(START - datetime.now(UTC))

    def make_app(port: int) -> web.Application:
        return create_app(
            settings(
                port=port,
                session_key=SESSION_KEY,
                login_burst_per_name=50,
                desk_sla_interval_s=0.2,
            ),
            nlu=nlu,
            agents=agents,
            clock=clock,
        )

    async def add_agents() -> None:
        for name, role in (("li.na", "agent"), ("zhao.min", "agent"), ("boss", "supervisor")):
            await add_agent(agents, name, role, PASSWORD, T0)  # type: ignore[arg-type]

    with served(make_app, add_agents) as url:
        yield Service(url, clock)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/console/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page.locator("#agent-name")).to_have_text(name)
    expect(page.locator("#live-dot")).to_have_attribute("data-state", "on")


def post_from_page(page: Page, path: str, body: dict[str, Any], token: str | None) -> Any:
    """A write from inside the signed-in page (its cookie), with or without the CSRF token."""
    return page.evaluate(
        """async ([path, body, token]) => {
            const headers = {"Content-Type": "application/json"};
            if (token) headers["X-CSRF-Token"] = token;
            const r = await fetch(path, {method: "POST", headers, body: JSON.stringify(body)});
            return {status: r.status, body: await r.json()};
        }""",
        [path, body, token],
    )


def test_handoff_claim_race_reply_block_promise_give_back(
    service: Service, browser: Browser, tmp_path: Path
) -> None:
    url = service.url
    acc = account(21)
    service.call("POST", "/api/accounts", {"accounts": [acc], "start": True})
    refused = {
        (409, f"{url}/api/console/cases/{acc['id']}/claim"),  # the race's loser
        (403, f"{url}/api/console/cases/{acc['id']}/reassign"),  # an agent tries
        (403, f"{url}/api/console/cases/{acc['id']}/notes"),  # no CSRF token
    }
    allowed = lambda status, u: (status, u) in refused  # noqa: E731
    with (
        watched_page(browser, url, DESKTOP, allowed) as li,
        watched_page(browser, url, DESKTOP, allowed) as zhao,
    ):
        sign_in(li, url, "li.na")
        sign_in(zhao, url, "zhao.min")
        expect(li.locator(f'.case[data-account="{acc["id"]}"]')).to_have_count(0)

        # The borrower disputes: the case appears on both screens without a reload.
        service.reply(acc["phone"], "这笔钱我根本没借过，你们搞错了", "SM" + "5" * 32)
        row = li.locator(f'.case[data-account="{acc["id"]}"]')
        expect(row).to_be_visible()
        expect(row).to_contain_text("争议")
        expect(row).to_contain_text("未认领")
        expect(zhao.locator(f'.case[data-account="{acc["id"]}"]')).to_be_visible()
        assert "张三" not in row.inner_text()  # masked in the list
        no_sideways_scroll(li)
        shot(li, tmp_path, "queue")

        # Both open it and claim at (nearly) once: one wins, the other is told who.
        for page in (li, zhao):
            page.click(f'.case[data-account="{acc["id"]}"] a.open')
            expect(page.locator("#claim")).to_be_visible()
        li.evaluate("document.getElementById('claim').click()")
        zhao.evaluate("document.getElementById('claim').click()")
        expect(zhao.locator("#flash-message")).to_contain_text("li.na")
        expect(li.locator("#case-holder")).to_have_text("li.na")
        expect(zhao.locator("#case-holder")).to_have_text("li.na")  # live on the loser's page
        expect(zhao.locator("#composer")).to_have_count(0)  # not theirs: no composer

        # The transcript: the bot's reminder with its delivery state; the reply with what the
        # bot understood.
        incoming = li.locator('.bubble[data-kind="in"]').last
        expect(incoming).to_contain_text("根本没借过")
        expect(incoming.locator('[data-intent="dispute"]')).to_be_visible()
        expect(
            li.locator('.bubble[data-kind="out"]').first.locator("[data-delivery]")
        ).to_be_visible()
        expect(li.locator("#borrower")).not_to_contain_text("张三")
        expect(li.locator("#phone")).not_to_contain_text(acc["phone"][3:])

        # A reply is sent through the gate and shows as delivered in the sandbox. The composer
        # starts from what every message must carry (config/desk.yaml).
        expect(li.locator("#message-text")).to_have_value(
            "【XX金融】XX消费金融客服：\n如有疑问请致电95XXX。"
        )
        li.click("#send")  # nothing written yet: said here, nothing sent
        expect(li.locator("#flash-message")).to_contain_text("Type a message")
        li.fill("#message-text", POLITE)
        li.click("#send")
        expect(li.locator("#flash-message")).to_contain_text("已发送")
        mine = li.locator('.bubble[data-kind="out"].agent').last
        expect(mine).to_contain_text("正在核实")
        expect(mine).to_contain_text("li.na")
        assert POLITE in [m["text"] for m in service.sandbox()]

        # A threat is blocked: the rule and why, and nothing is sent.
        li.fill("#message-text", THREAT)
        li.click("#send")
        flash = li.locator("#flash-message")
        expect(flash).to_contain_text("CN-CONTENT-02")
        expect(flash).to_contain_text("已拦截")
        assert THREAT not in [m["text"] for m in service.sandbox()]
        shot(li, tmp_path, "case")

        # A template instead: its text (filled in for this account) shows in the box, which
        # is not editable; the gate's verdict is shown; the box comes back afterwards.
        options = li.locator("#message-template option:not([value=''])")
        assert options.count() > 0
        name = options.first.get_attribute("value")
        li.select_option("#message-template", name)
        expect(li.locator("#message-text")).to_be_disabled()
        expect(li.locator("#message-text")).to_have_value(options.first.get_attribute("title"))
        li.click("#send")
        # The same words as the reminder sent this morning: an identical answer is dropped
        # (CN-FREQ-04), and the box keeps the refused template for the agent to see ...
        expect(li.locator("#flash-message")).to_contain_text("已拦截")
        expect(li.locator("#flash-message")).to_contain_text("CN-FREQ-04")
        expect(li.locator("#message-text")).to_be_disabled()
        assert [m["text"] for m in service.sandbox()].count(
            options.first.get_attribute("title")
        ) <= 1
        # ... until no template is chosen: the box comes back.
        li.select_option("#message-template", "")
        expect(li.locator("#message-text")).to_be_enabled()

        # An agent cannot reach a supervisor's action; a write without the token is refused.
        expect(li.locator("#reassign")).to_have_count(0)
        token = li.locator("#main").get_attribute("data-csrf")
        case_id = li.locator("#live-case").get_attribute("data-case-id")
        base = f"/api/console/cases/{acc['id']}"
        r = post_from_page(li, base + "/reassign", {"case_id": case_id, "to": "zhao.min"}, token)
        assert r["status"] == 403 and "supervisor" in r["body"]["error"]
        r = post_from_page(li, base + "/notes", {"case_id": case_id, "text": "x"}, None)
        assert r["status"] == 403 and "CSRF" in r["body"]["error"]

        # A promise for Saturday, and the conversation goes back to the bot at `promised`.
        li.locator("details.action summary", has_text="Record a promise").click()
        li.fill("#promise-date", "2026-11-28")
        li.fill("#promise-amount", "3200")
        li.locator("#promise button").click()
        expect(li.locator("#flash-message")).to_contain_text("Promise recorded")
        expect(li.locator("#promises")).to_contain_text("2026-11-28")
        li.select_option("#resolve select[name=how]", "keep_paused")
        expect(li.locator("#to-state")).to_be_hidden()  # only what applies
        li.select_option("#resolve select[name=how]", "return")
        expect(li.locator("#to-state")).to_be_visible()
        li.select_option("#to-state", "promised")
        li.locator("#resolve button").click()
        expect(li.locator("#no-case")).to_be_visible()
        expect(li.locator("#flash-message")).to_contain_text("Resolution queued")  # after reload
        expect(li.locator("#flow-state")).to_have_text("promised")

        # The queue is empty on the other screen too.
        zhao.goto(f"{url}/console")
        expect(zhao.locator(f'.case[data-account="{acc["id"]}"]')).to_have_count(0)

    # Saturday 09:31 in Beijing: the bot reminds of the promise.
    # The promise named a sum: the reminder quotes it (promise_day_reminder_amount).
    assert "promise_day_reminder_amount" not in [m["template"] for m in service.sandbox()]
    service.clock.advance(timedelta(days=2, hours=23, minutes=31))
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while "promise_day_reminder_amount" not in [m["template"] for m in service.sandbox()]:
        assert datetime.now(UTC) < deadline, "the promise-day reminder did not go out"
        time.sleep(0.1)


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_pages_fit_and_refuse_without_a_session(
    service: Service, browser: Browser, tmp_path: Path, size: tuple[int, int]
) -> None:
    url = service.url
    acc = account(30 + size[0] % 7)
    service.call("POST", "/api/accounts", {"accounts": [acc], "start": True})
    service.reply(acc["phone"], "我失业了，能不能分期还", f"SM{size[0]:032d}")
    refused = {(401, f"{url}/api/console/cases")}
    with watched_page(browser, url, size, lambda s, u: (s, u) in refused) as page:
        # Without a session: the pages send to the sign-in, the API answers 401.
        page.goto(f"{url}/console/cases/{acc['id']}")
        expect(page).to_have_url(f"{url}/console/login?next=/console/cases/{acc['id']}")
        assert page.request.get(f"{url}/api/console/cases").status == 401
        page.fill("#name", "boss")
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        expect(page).to_have_url(f"{url}/console/cases/{acc['id']}")
        expect(page.locator("#reassign")).to_be_visible()  # a supervisor's action
        expect(page.locator("#claim")).to_be_visible()
        no_sideways_scroll(page)
        shot(page, tmp_path, "case-supervisor")
        # Reveal: the number unmasked, and audited.
        page.click("#reveal")
        expect(page.locator("#revealed")).to_be_visible()
        expect(page.locator("#phone")).to_contain_text(acc["phone"])
        audit = service.call("GET", f"/api/conversations/{acc['id']}")
        assert audit["phone"] == acc["phone"]
        page.goto(f"{url}/console")
        row = page.locator(f'.case[data-account="{acc["id"]}"]')
        expect(row).to_be_visible()
        no_sideways_scroll(page)
        shot(page, tmp_path, "queue-supervisor")
        if size == PHONE:  # once: the clock moves for the whole module
            # An hour and a half unclaimed: the SLA step marks it, and the supervisor is told.
            service.clock.advance(timedelta(minutes=90))
            expect(page.locator("#flash-message")).to_contain_text("SLA passed unclaimed")
            expect(row).to_have_attribute("data-expired", "true")
        page.goto(f"{url}/console/unmatched")
        expect(page.locator("#no-unmatched, #unmatched")).to_be_visible()
        no_sideways_scroll(page)

"""The case queue's JSON API (/api/console/cases…, /api/console/unmatched…) through the real
service on the memory store and a real Redis: what an integrator's own desk would do, with two
agents and a supervisor each in a session of their own."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from bot.console.agents import add_agent, set_disabled
from bot.console.schemas import CaseList, CaseResult, Queued, TemplateList, UnmatchedList
from bot.context import PIPELINE
from bot.desk.view import CaseView, MessageVerdict
from bot.storage.base import Store
from intents import Understander
from tests.service.apphelpers import AUTH, account, conversation, daytime_clock, post_twilio
from tests.service.consolehelpers import (
    PASSWORD,
    T0,
    agents_with,
    console,
    second_browser,
    sign_in,
    sign_in_as,
)

pytestmark = pytest.mark.timeout(60)
Client = TestClient[Any, Any] | ClientSession


async def _settle(c: TestClient[Any, Any]) -> None:
    await c.app[PIPELINE].idle()


async def _disputed(c: TestClient[Any, Any], i: int = 1) -> dict[str, Any]:
    acc = account(i)
    r = await c.post("/api/accounts", json={"accounts": [acc], "start": True}, headers=AUTH)
    assert r.status == 200
    await _settle(c)
    await post_twilio(c, acc["phone"], "这笔钱我根本没借过，你们搞错了", f"SM{i:032d}")
    await _settle(c)
    return acc


async def _post(s: Client, url: str, token: str, body: dict[str, Any]) -> Any:
    return await s.post(url, json=body, headers={"X-CSRF-Token": token})


async def _agents() -> Any:
    return await agents_with(("li.na", "agent"), ("zhao.min", "agent"), ("boss", "supervisor"))


async def test_queue_claim_race_reassign_note_promise_and_give_back(
    nlu: Understander, store: Store
) -> None:
    clock = daytime_clock()
    async with console(nlu, await _agents(), store=store, clock=clock) as c:
        token = await sign_in(c, "li.na")
        acc = await _disputed(c)
        r = await c.get("/api/console/cases")
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        listing = CaseList.model_validate(await r.json())
        (row,) = listing.cases
        assert (row.case.account_id, row.case.reason, row.case.state) == (
            acc["id"],
            "dispute",
            "waiting",
        )
        assert row.phone == "+86138****0001" or "****" in row.phone  # masked
        assert "张三" not in row.name and row.sla_left_s > 0 and not row.expired
        assert "dispute" in listing.reasons and listing.total == 1
        case_id = row.case.id
        base = f"/api/console/cases/{acc['id']}"

        async with second_browser(c) as other, second_browser(c) as boss:
            other_token = await sign_in_as(other, "zhao.min")
            boss_token = await sign_in_as(boss, "boss")
            # Two agents claim at once: exactly one wins, the other is told who has it.
            first, second = await asyncio.gather(
                _post(c, base + "/claim", token, {"case_id": case_id}),
                _post(other, base + "/claim", other_token, {"case_id": case_id}),
            )
            statuses = sorted([first.status, second.status])
            assert statuses == [200, 409], statuses
            loser = first if first.status == 409 else second
            winner_name = "zhao.min" if loser is first else "li.na"
            refusal = await loser.json()
            assert refusal["holder"] == winner_name and winner_name in refusal["error"]
            # The winner's case; only it (or a supervisor) acts on it.
            mine = CaseList.model_validate(await (await c.get("/api/console/cases?mine=1")).json())
            assert [k.case.id for k in mine.cases] == ([case_id] if winner_name == "li.na" else [])
            # An agent cannot reassign: supervisors only; the supervisor gives it to li.na.
            r = await _post(
                other, base + "/reassign", other_token, {"case_id": case_id, "to": "li.na"}
            )
            assert r.status == 403
            r = await _post(
                boss, base + "/reassign", boss_token, {"case_id": case_id, "to": "li.na"}
            )
            assert r.status == 200
            assert CaseResult.model_validate(await r.json()).case.holder == "li.na"
            # zhao.min no longer holds it: a promise from them is refused and changes nothing.
            r = await _post(
                other, base + "/promise", other_token, {"case_id": case_id, "date": "2026-11-28"}
            )
            assert r.status == 403 and "claim it first" in (await r.json())["error"]

        r = await _post(
            c, base + "/notes", token, {"case_id": case_id, "text": "电话已联系，周六还"}
        )
        assert r.status == 200
        assert [n.detail.get("text") for n in CaseResult.model_validate(await r.json()).case.notes]
        r = await _post(
            c,
            base + "/promise",
            token,
            {"case_id": case_id, "date": "2026-11-28", "amount": "3200"},
        )
        assert r.status == 202 and Queued.model_validate(await r.json()).queued
        await _settle(c)
        # Malformed: a bad date, an unknown resolution, a missing case id: 400s, nothing queued.
        for body in (
            {"case_id": case_id, "date": "2026-13-01"},
            {"date": "2026-11-28"},
            {"case_id": case_id, "date": "2026-11-28", "amount": "-5"},
        ):
            r = await _post(c, base + "/promise", token, body)
            assert r.status == 400, body
        r = await _post(
            c, base + "/resolve", token, {"case_id": case_id, "how": "return", "to_state": "paid"}
        )
        assert r.status == 400 and "possible" in (await r.json())["error"]
        r = await _post(
            c,
            base + "/resolve",
            token,
            {"case_id": case_id, "how": "return", "to_state": "promised"},
        )
        assert r.status == 202 and (await r.json())["queued"] is True
        r = await _post(
            c,
            base + "/resolve",
            token,
            {"case_id": case_id, "how": "return", "to_state": "promised"},
        )
        assert r.status in (202, 404)  # a second click: queued already, or resolved already
        await _settle(c)
        assert (await c.get("/api/console/cases")).status == 200
        assert CaseList.model_validate(await (await c.get("/api/console/cases")).json()).cases == []
        conv = await conversation(c, acc["id"])
        assert conv["state"] == "promised" and "promise_day" in conv["timers"]
        # The promised day: the bot reminds.
        clock.advance(timedelta(days=2, hours=23, minutes=31))
        await c.app[PIPELINE].fire_due_timers()
        await _settle(c)
        sent = await (await c.get("/api/sandbox/messages", headers=AUTH)).json()
        assert "promise_day_reminder_amount" in [m["template"] for m in sent]  # it named a sum


async def test_without_a_session_or_csrf_token_nothing_changes(nlu: Understander) -> None:
    async with console(nlu, await _agents(), clock=daytime_clock()) as c:
        acc = await _disputed(c)
        base = f"/api/console/cases/{acc['id']}"
        # No session: 401 for reads and writes.
        assert (await c.get("/api/console/cases")).status == 401
        assert (await c.get("/api/console/events")).status == 401
        r = await c.post(base + "/claim", json={"case_id": "x"})
        assert r.status == 401
        token = await sign_in(c, "li.na")
        listing = CaseList.model_validate(await (await c.get("/api/console/cases")).json())
        case_id = listing.cases[0].case.id
        # A session but no token, or another token: 403, and the case is not claimed.
        for headers in ({}, {"X-CSRF-Token": "x" * 43}):
            r = await c.post(base + "/claim", json={"case_id": case_id}, headers=headers)
            assert r.status == 403, headers
        listing = CaseList.model_validate(await (await c.get("/api/console/cases")).json())
        assert listing.cases[0].case.holder is None
        # Not JSON, or a bad filter: 400 with a reason.
        r = await c.post(base + "/claim", data="case_id=1", headers={"X-CSRF-Token": token})
        assert r.status == 400 and "application/json" in (await r.json())["error"]
        assert (await c.get("/api/console/cases?mine=maybe")).status == 400
        for limit in ("0", "1001", "x", "-1"):
            assert (await c.get(f"/api/console/cases?limit={limit}")).status == 400, limit
        r = await _post(c, "/api/console/cases/nobody/claim", token, {"case_id": case_id})
        assert r.status == 404


async def test_unmatched_listed_masked_linked_and_dismissed(
    nlu: Understander, store: Store
) -> None:
    async with console(nlu, await _agents(), store=store, clock=daytime_clock()) as c:
        token = await sign_in(c, "li.na")
        acc = account(1)
        await c.post("/api/accounts", json={"accounts": [acc], "start": True}, headers=AUTH)
        await _settle(c)
        await post_twilio(
            c, "+8613900000099", "我是张三，身份证110101199003074518，明天还", "SM" + "3" * 32
        )
        await post_twilio(c, "+8613900000098", "广告", "SM" + "4" * 32)
        await _settle(c)
        listing = UnmatchedList.model_validate(await (await c.get("/api/console/unmatched")).json())
        assert len(listing.messages) == 2
        first = next(m for m in listing.messages if "张三" in m.text)
        assert "110101199003074518" not in first.text and "0099" in first.phone
        assert "13900000099" not in first.phone
        url = f"/api/console/unmatched/{first.provider}/{first.msg_id}"
        r = await _post(c, url + "/link", token, {"account_id": "nobody"})
        assert r.status == 404
        r = await _post(c, url + "/link", token, {"account_id": acc["id"]})
        assert r.status == 202 and (await r.json())["queued"] is True
        await _settle(c)
        conv = await conversation(c, acc["id"])
        assert any("明天还" in e["detail"].get("text", "") for e in conv["transcript"])
        second = next(m for m in listing.messages if m is not first)
        url = f"/api/console/unmatched/{second.provider}/{second.msg_id}"
        r = await _post(c, url + "/dismiss", token, {})
        assert r.status == 204
        r = await _post(c, url + "/dismiss", token, {})
        assert r.status == 404  # gone already
        assert (await (await c.get("/api/console/unmatched")).json())["messages"] == []


async def _next_event(stream: Any) -> tuple[str, dict[str, Any]]:
    """The next server-sent event (kind, data), skipping pings."""
    kind, data = "", ""
    while True:
        line = (await stream.content.readline()).decode().rstrip("\r\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line == "" and kind:
            return kind, json.loads(data)


async def test_the_live_feed_streams_a_handoff_and_a_claim(nlu: Understander, store: Store) -> None:
    async with console(nlu, await _agents(), store=store, clock=daytime_clock()) as c:
        token = await sign_in(c, "li.na")
        async with c.get("/api/console/events") as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert await asyncio.wait_for(_next_event(stream), 5) == ("ready", {})
            acc = await _disputed(c)
            kind, data = await asyncio.wait_for(_next_event(stream), 5)
            assert (kind, data["account_id"], data["detail"]["reason"]) == (
                "case_opened",
                acc["id"],
                "dispute",
            )
            assert "张三" not in json.dumps(data) and acc["phone"][3:] not in json.dumps(data)
            listing = CaseList.model_validate(await (await c.get("/api/console/cases")).json())
            case_id = listing.cases[0].case.id
            r = await _post(c, f"/api/console/cases/{acc['id']}/claim", token, {"case_id": case_id})
            assert r.status == 200
            kind, data = await asyncio.wait_for(_next_event(stream), 5)
            assert (kind, data["by"], data["detail"]["holder"]) == (
                "case_claimed",
                "li.na",
                "li.na",
            )


POLITE = "【XX金融】您好，我是XX消费金融客服专员，已收到您的异议，正在核实，如有疑问请致电95XXX。"


async def test_the_conversation_view_reveal_templates_and_composer(
    nlu: Understander, store: Store
) -> None:
    async with console(nlu, await _agents(), store=store, clock=daytime_clock()) as c:
        token = await sign_in(c, "li.na")
        acc = await _disputed(c)
        base = f"/api/console/cases/{acc['id']}"
        view = CaseView.model_validate(await (await c.get(base)).json())
        assert view.phone != acc["phone"] and "张三" not in view.name and not view.revealed
        assert view.case is not None and view.case.reason == "dispute"
        (reply,) = [i for i in view.transcript if i.direction == "in"]
        assert reply.intent == "dispute" and reply.score is not None
        assert [i.state for i in view.transcript if i.direction == "out"]  # delivery states
        # A reveal shows the number and is audited with the agent's name.
        r = await _post(c, base + "/reveal", token, {})
        assert r.status == 200
        assert CaseView.model_validate(await r.json()).phone == acc["phone"]
        reveals = [e.detail for e in await store.read_audit(acc["id"]) if e.kind == "reveal"]
        assert [d["by"] for d in reveals] == ["li.na"]
        templates = TemplateList.model_validate(await (await c.get(base + "/templates")).json())
        assert templates.templates and all("{" not in t.text for t in templates.templates)
        # The composer: only the holder; a polite answer goes, a threat is blocked with its rule.
        case_id = view.case.id
        r = await _post(c, base + "/messages", token, {"case_id": case_id, "text": POLITE})
        assert r.status == 403
        await _post(c, base + "/claim", token, {"case_id": case_id})
        r = await _post(c, base + "/messages", token, {"case_id": case_id, "text": POLITE})
        sent = MessageVerdict.model_validate(await r.json())
        assert r.status == 200 and sent.verdict == "send" and sent.message_id
        threat = "【XX金融】再不还钱就让你坐牢。详询95XXX。"
        r = await _post(c, base + "/messages", token, {"case_id": case_id, "text": threat})
        blocked = MessageVerdict.model_validate(await r.json())
        assert blocked.verdict == "block" and blocked.message_id is None
        assert any(rule.startswith("CN-CONTENT") for rule in blocked.rules) and blocked.reasons
        r = await _post(c, base + "/messages", token, {"case_id": case_id})
        assert r.status == 400  # neither text nor template
        await _settle(c)
        texts = [
            m["text"] for m in await (await c.get("/api/sandbox/messages", headers=AUTH)).json()
        ]
        assert POLITE in texts and threat not in texts


async def test_the_queue_lists_its_top_and_counts_the_rest(nlu: Understander) -> None:
    async with console(nlu, await _agents(), clock=daytime_clock()) as c:
        await sign_in(c, "li.na")
        accounts = [await _disputed(c, i) for i in (1, 2, 3)]
        everything = CaseList.model_validate(await (await c.get("/api/console/cases")).json())
        top = CaseList.model_validate(await (await c.get("/api/console/cases?limit=2")).json())
        assert (everything.total, top.total, len(top.cases)) == (3, 3, 2)
        # The same order: the longest waiting first (same priority, none expired).
        assert [r.case.id for r in top.cases] == [r.case.id for r in everything.cases][:2]
        assert top.cases[0].case.account_id == accounts[0]["id"]
        page = await (await c.get("/console")).text()
        assert 'id="more-cases"' not in page  # all three fit the page's 100


async def test_nonsense_is_refused_and_changes_nothing(nlu: Understander, store: Store) -> None:
    agents = await _agents()
    await add_agent(agents, "gone", "agent", PASSWORD, T0)
    await set_disabled(agents, "gone", True, T0)
    async with console(nlu, agents, store=store, clock=daytime_clock()) as c:
        token = await sign_in(c, "li.na")
        acc = await _disputed(c)
        base = f"/api/console/cases/{acc['id']}"
        case_id = CaseList.model_validate(await (await c.get("/api/console/cases")).json())
        case_id = case_id.cases[0].case.id
        # An agent acts only on a case it holds, notes included.
        r = await _post(c, base + "/notes", token, {"case_id": case_id, "text": "x"})
        assert r.status == 403
        await _post(c, base + "/claim", token, {"case_id": case_id})
        # Dates a promise cannot have (the clock says 2026-11-25), more than is owed, "yes".
        for body in (
            {"date": "9999-12-31"},
            {"date": "2020-01-01"},
            {"date": "2028-01-01"},
            {"date": "2026-11-28", "amount": "999999"},
        ):
            r = await _post(c, base + "/promise", token, {"case_id": case_id, **body})
            assert r.status == 400, (body, await r.text())
        r = await _post(
            c, base + "/hold", token, {"case_id": case_id, "hold": "hardship", "on": "yes"}
        )
        assert r.status == 400
        plan = {"case_id": case_id, "instalments": [{"due": "2019-01-01", "amount": "100"}]}
        assert (await _post(c, base + "/plan", token, plan)).status == 400
        await _settle(c)
        view = CaseView.model_validate(await (await c.get(base)).json())
        assert view.promises == [] or all(p.date != date(9999, 12, 31) for p in view.promises)
        # A supervisor reassigns only to an agent who can take it.
        async with second_browser(c) as boss:
            boss_token = await sign_in_as(boss, "boss")
            for to in ("ghost", "gone"):
                r = await _post(
                    boss, base + "/reassign", boss_token, {"case_id": case_id, "to": to}
                )
                assert r.status == 400 and to in (await r.json())["error"]
        listing = CaseList.model_validate(await (await c.get("/api/console/cases")).json())
        assert listing.cases[0].case.holder == "li.na"

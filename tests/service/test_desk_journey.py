"""The case queue through the real service (bot.desk.service over the pipeline), on the memory
store and a real Redis: a borrower's dispute opens a case, two agents race for it, the winner
records a promise and gives the conversation back, and the bot reminds on the promised day."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.context import CLOCK, DESK, DESK_SERVICE, PIPELINE
from bot.desk.case import Case
from bot.desk.errors import CaseHeld, InvalidRequest, PermissionDenied
from bot.records import Instalment
from bot.storage.base import Store
from bot.transport.inbound import InboundSms
from intents import Understander
from tests.service.apphelpers import AUTH, account, client, conversation, daytime_clock, post_twilio

pytestmark = pytest.mark.timeout(60)


async def _settle(c: Any) -> None:
    await c.app[PIPELINE].idle()


async def _sent(c: Any) -> list[str]:
    return [
        m["template"] for m in await (await c.get("/api/sandbox/messages", headers=AUTH)).json()
    ]


async def _disputed(c: Any) -> dict[str, Any]:
    acc = account(1)
    r = await c.post("/api/accounts", json={"accounts": [acc], "start": True}, headers=AUTH)
    assert r.status == 200
    await _settle(c)
    await post_twilio(c, acc["phone"], "这笔钱我根本没借过，你们搞错了", "SM" + "1" * 32)
    await _settle(c)
    return acc


async def _claimed(c: Any) -> tuple[dict[str, Any], Case]:
    """A disputed borrower's case, claimed by alice."""
    desk = c.app[DESK_SERVICE]
    acc = await _disputed(c)
    (case,) = await desk.list_cases("alice", "agent")
    await desk.claim("alice", "agent", acc["id"], case.id)
    return acc, case


async def test_handoff_claim_promise_give_back_and_the_bot_reminds(
    nlu: Understander, store: Store
) -> None:
    clock = daytime_clock()  # 10:00 in Shanghai on 2026-11-25
    async with client(nlu, store=store, clock=clock) as c:
        desk = c.app[DESK_SERVICE]
        feed = store.desk.events.subscribe()
        first = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.1)
        acc = await _disputed(c)
        # The handoff is a case in the queue, in the same commit as the step.
        cases = await desk.list_cases("alice", "agent")
        assert [(k.account_id, k.reason, k.priority, k.state) for k in cases] == [
            (acc["id"], "dispute", "high", "waiting")
        ]
        case = cases[0]
        assert case.sla_due - case.opened_at == timedelta(minutes=60)  # config/desk.yaml
        opened = await asyncio.wait_for(first, 5)
        assert (opened.kind, opened.account_id) == ("case_opened", acc["id"])
        # Agent A claims; agent B's claim fails naming A.
        await desk.claim("alice", "agent", acc["id"], case.id)
        with pytest.raises(CaseHeld, match="alice"):
            await desk.claim("bob", "agent", acc["id"], case.id)
        with pytest.raises(PermissionDenied):
            await desk.record_promise("bob", "agent", acc["id"], case.id, date(2026, 11, 28))
        assert await desk.list_cases("bob", "agent", unassigned=True) == []
        assert [k.id for k in await desk.list_cases("alice", "agent", mine=True)] == [case.id]
        # A records the promise agreed on the phone and gives the conversation back.
        assert await desk.record_promise(
            "alice", "agent", acc["id"], case.id, date(2026, 11, 28), Decimal("3200.00")
        )
        await _settle(c)
        assert set(await desk.give_back_states("alice", "agent", acc["id"])) == {
            "awaiting_reply",
            "promised",
        }
        with pytest.raises(InvalidRequest, match="possible"):
            await desk.resolve("alice", "agent", acc["id"], case.id, "return", to_state="paid")
        assert await desk.resolve(
            "alice", "agent", acc["id"], case.id, "return", to_state="promised"
        )
        # A second click queues nothing more.
        assert not await desk.resolve(
            "alice", "agent", acc["id"], case.id, "return", to_state="promised"
        )
        await _settle(c)
        assert await desk.get_case("alice", "agent", acc["id"]) is None
        closed = await desk.closed_cases("alice", "agent", acc["id"])
        assert [(k.id, k.resolved_by, k.resolution) for k in closed] == [
            (case.id, "alice", "returned:promised")
        ]
        conv = await conversation(c, acc["id"])
        assert conv["state"] == "promised" and "promise_day" in conv["timers"]
        assert "disputed" not in conv["flags"] and "paused" not in conv["flags"]
        agent_audit = [e["detail"] for e in await _audit(store, acc["id"]) if e["kind"] == "agent"]
        assert [(d["by"], d["do"]) for d in agent_audit] == [
            ("alice", "promise"),
            ("alice", "resolve"),
        ]
        # The promised day, 09:30 in Shanghai: the bot reminds.
        assert "promise_day_reminder_amount" not in await _sent(c)  # the promise named a sum
        clock.advance(timedelta(days=2, hours=23, minutes=31))
        await c.app[PIPELINE].fire_due_timers()
        await _settle(c)
        assert "promise_day_reminder_amount" in await _sent(c)
        await feed.aclose()  # type: ignore[attr-defined]


async def _pay(c: Any, account_id: str, amount: str, reference: str) -> None:
    paid_at = c.app[CLOCK].now().isoformat()
    body = {"account_id": account_id, "amount": amount, "paid_at": paid_at, "reference": reference}
    assert (await c.post("/api/payments", json=body, headers=AUTH)).status == 202
    await _settle(c)


async def _next_day_at_0931(c: Any, day: date) -> None:
    """The clock to 09:31 in Shanghai on ``day`` (the promise-day reminder is due at 09:30)."""
    clock = c.app[CLOCK]
    target = datetime(day.year, day.month, day.day, 9, 31, tzinfo=ZoneInfo("Asia/Shanghai"))
    clock.advance(target - clock.now())
    await c.app[PIPELINE].fire_due_timers()
    await _settle(c)


async def test_a_plan_given_back_at_promised_is_tracked_instalment_by_instalment(
    nlu: Understander, store: Store
) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        desk = c.app[DESK_SERVICE]
        acc, case = await _claimed(c)
        days = [date(2026, 11, 28), date(2026, 12, 8), date(2026, 12, 18)]
        amounts = ["1000.00", "1000.00", "1200.00"]
        plan = [Instalment(due=d, amount=Decimal(a)) for d, a in zip(days, amounts, strict=True)]
        assert await desk.record_plan("alice", "agent", acc["id"], case.id, plan)
        await _settle(c)
        # No day given: the promise is the plan's first instalment.
        assert await desk.resolve(
            "alice", "agent", acc["id"], case.id, "return", to_state="promised"
        )
        await _settle(c)
        conv = await conversation(c, acc["id"])
        assert conv["state"] == "promised"
        assert (conv["promise"]["date"], conv["promise"]["amount"]) == ("2026-11-28", "1000.00")
        assert [i["due"] for i in conv["plan"]] == [d.isoformat() for d in days]
        # Each instalment's day brings its reminder; its payment makes the next the promise.
        for n, (day, amount) in enumerate(zip(days, amounts, strict=True)):
            await _next_day_at_0931(c, day)
            assert (await _sent(c)).count("instalment_day_reminder") == n + 1
            await _pay(c, acc["id"], amount, f"pay-{n}")
            conv = await conversation(c, acc["id"])
            if n < 2:
                assert conv["state"] == "promised"
                assert conv["promise"]["date"] == days[n + 1].isoformat()
                assert conv["promise"]["amount"] == amounts[n + 1]
                assert (await _sent(c))[-1] == "instalment_received"
        assert conv["state"] == "paid"
        assert (await _sent(c))[-1] == "thanks_paid"
        sandbox = await (await c.get("/api/sandbox/messages", headers=AUTH)).json()
        reminders = [m["text"] for m in sandbox if m["template"] == "instalment_day_reminder"]
        assert [t.split("本期应还")[1][:7] for t in reminders] == ["1000.00", "1000.00", "1200.00"]


async def test_a_new_plan_replaces_the_old_and_an_empty_one_clears_it(
    nlu: Understander, store: Store
) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        desk = c.app[DESK_SERVICE]
        acc, case = await _claimed(c)
        first = [Instalment(due=date(2026, 12, 1), amount=Decimal("3200"))]
        second = [Instalment(due=date(2026, 12, 2), amount=Decimal("1600"))]
        for plan, want in ((first, ["2026-12-01"]), (second, ["2026-12-02"]), ([], [])):
            assert await desk.record_plan("alice", "agent", acc["id"], case.id, plan)
            await _settle(c)
            conv = await conversation(c, acc["id"])
            assert [i["due"] for i in conv["plan"]] == want
        # A plan whose first day passed while the case waited is not given back as it is.
        assert await desk.record_plan("alice", "agent", acc["id"], case.id, first)
        await _settle(c)
        c.app[CLOCK].advance(timedelta(days=7))
        with pytest.raises(InvalidRequest, match="from today"):
            await desk.resolve("alice", "agent", acc["id"], case.id, "return", to_state="promised")
        assert await desk.record_plan("alice", "agent", acc["id"], case.id, [])
        await _settle(c)
        # No plan and no promise: giving back at promised needs a day.
        with pytest.raises(InvalidRequest, match="needs a promised date"):
            await desk.resolve("alice", "agent", acc["id"], case.id, "return", to_state="promised")


async def _audit(store: Store, account_id: str) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in await store.read_audit(account_id)]


async def test_sla_expiry_tops_the_queue_and_notifies_supervisors(
    nlu: Understander, store: Store
) -> None:
    clock = daytime_clock()
    async with client(nlu, store=store, clock=clock) as c:
        desk = c.app[DESK_SERVICE]
        acc = await _disputed(c)
        assert await c.app[PIPELINE].expire_cases() == 0
        clock.advance(timedelta(minutes=61))
        assert await c.app[PIPELINE].expire_cases() == 1
        assert await c.app[PIPELINE].expire_cases() == 0  # once
        (case,) = await desk.list_cases("sue", "supervisor")
        assert case.expired_at is not None
        notes = [e["detail"] for e in await _audit(store, acc["id"]) if e["kind"] == "case_expired"]
        assert [(d["reason"], d["notify"]) for d in notes] == [("dispute", "supervisors")]
        # Only a supervisor reassigns.
        with pytest.raises(PermissionDenied, match="supervisors only"):
            await desk.reassign("alice", "agent", acc["id"], case.id, "bob")
        moved = await desk.reassign("sue", "supervisor", acc["id"], case.id, "bob")
        assert moved.holder == "bob"
        # Bob keeps it paused: the case closes, the conversation stays with a person.
        assert await desk.set_hold("bob", "agent", acc["id"], case.id, "hardship", True)
        plan = [
            Instalment(due=date(2026, 12, 1), amount=Decimal("1600")),
            Instalment(due=date(2027, 1, 1), amount=Decimal("1600")),
        ]
        assert await desk.record_plan("bob", "agent", acc["id"], case.id, plan)
        await _settle(c)  # the note is written at once, the actions above through the queue
        await desk.add_note("bob", "agent", acc["id"], case.id, "失业三个月，下月起分两期")
        assert await desk.resolve("bob", "agent", acc["id"], case.id, "keep_paused")
        await _settle(c)
        assert await desk.get_case("bob", "agent", acc["id"]) is None
        conv = await conversation(c, acc["id"])
        assert conv["state"] == "with_agent" and "hardship" in conv["flags"]
        kinds = [
            (e["detail"].get("do")) for e in await _audit(store, acc["id"]) if e["kind"] == "agent"
        ]
        assert kinds == ["hold", "plan", "note", "resolve"]


async def test_a_reply_on_an_open_case_is_on_the_feed(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc = await _disputed(c)
        feed = store.desk.events.subscribe()
        got = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.1)
        await post_twilio(c, acc["phone"], "你们什么时候联系我", "SM" + "2" * 32)
        await _settle(c)
        # The reply may also raise the case (a handoff of its own): then that comes first.
        kinds = [(await asyncio.wait_for(got, 5)).kind]
        while "inbound" not in kinds:
            event = await asyncio.wait_for(anext(feed), 5)
            kinds.append(event.kind)
            assert event.account_id == acc["id"]
        assert set(kinds) <= {"inbound", "case_opened"}, kinds
        await feed.aclose()  # type: ignore[attr-defined]


async def test_linking_an_unmatched_message_queues_it_once(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        desk = c.app[DESK_SERVICE]
        acc = account(1)
        await c.post("/api/accounts", json={"accounts": [acc], "start": True}, headers=AUTH)
        await _settle(c)
        # The borrower writes from a second phone.
        await post_twilio(c, "+8613900000099", "我是张三，明天还", "SM" + "3" * 32)
        await _settle(c)
        (sms,) = await store.list_unmatched()
        results = await asyncio.gather(
            desk.link_unmatched("alice", "agent", sms.provider, sms.msg_id, acc["id"]),
            desk.link_unmatched("bob", "agent", sms.provider, sms.msg_id, acc["id"]),
            return_exceptions=True,
        )
        assert sum(r is True for r in results) == 1, results
        await _settle(c)
        conv = await conversation(c, acc["id"])
        texts = [e["detail"]["text"] for e in conv["transcript"] if e["kind"] == "inbound"]
        assert texts == ["我是张三，明天还"]
        assert await store.list_unmatched() == []
        handled = await store.desk.handled_unmatched()
        assert [h["outcome"] for h in handled] == ["linked"]
        # Another one is dismissed: off the list, kept for audit.
        await post_twilio(c, "+8613900000098", "广告", "SM" + "4" * 32)
        await _settle(c)
        (other,) = await store.list_unmatched()
        await desk.dismiss_unmatched("alice", "agent", other.provider, other.msg_id)
        assert await store.list_unmatched() == []
        assert [h["outcome"] for h in await store.desk.handled_unmatched()] == [
            "linked",
            "dismissed",
        ]
        assert isinstance(sms, InboundSms)


async def test_a_bad_desk_file_keeps_the_running_settings(nlu: Understander, tmp_path: Any) -> None:
    path = tmp_path / "desk.yaml"
    path.write_text("default_sla_minutes: 30\nsla_minutes:\n  dispute: 15\n", encoding="utf-8")
    async with client(nlu, desk_file=path) as c:
        assert c.app[DESK].config.sla_minutes == {"dispute": 15}
        path.write_text(
            "default_sla_minutes: 30\nsla_minutes:\n  dispute: soon\n", encoding="utf-8"
        )
        r = await c.post("/api/admin/reload", headers=AUTH)
        assert r.status == 422
        problems = (await r.json())["problems"]
        assert any(f"{path}:3: sla_minutes.dispute" in p for p in problems), problems
        assert c.app[DESK].config.sla_minutes == {"dispute": 15}
        assert c.app[CLOCK] is not None


async def test_the_plain_agent_api_closes_the_open_case(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc = await _disputed(c)
        (case,) = await c.app[DESK_SERVICE].list_cases("alice", "agent")
        r = await c.post(
            f"/api/conversations/{acc['id']}/agent", json={"action": "returned"}, headers=AUTH
        )
        assert r.status == 202
        await _settle(c)
        assert await store.desk.case(acc["id"]) is None
        (closed,) = await store.desk.closed_cases(acc["id"])
        assert (closed.id, closed.resolved_by, closed.resolution) == (
            case.id,
            "api",
            "api:returned",
        )
        assert (await conversation(c, acc["id"]))["state"] == "awaiting_reply"

"""The agent's view of a conversation and the composer, through the real service (the desk
over the pipeline and the sandbox carrier), on the memory store and a real Redis."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from bot.context import CLOCK, DESK_SERVICE, PIPELINE
from bot.desk.case import Case
from bot.desk.errors import CaseNotFound, InvalidRequest, PermissionDenied
from bot.desk.service import Desk
from bot.records import DeskAction, QueuedEvent
from bot.storage.base import Store
from intents import Understander
from tests.service.apphelpers import AUTH, account, client, daytime_clock, post_twilio

pytestmark = pytest.mark.timeout(60)

ID_NUMBER = "110101199003071234"
# What the cn pack asks of every collection SMS: the signature, the creditor, a contact.
POLITE = "【XX金融】您好，我是XX消费金融客服专员，已收到您的异议，正在核实，如有疑问请致电95XXX。"


async def _settle(c: Any) -> None:
    await c.app[PIPELINE].idle()


async def _handed_off(c: Any) -> tuple[dict[str, Any], Desk, Case]:
    """A borrower who promised, then disputed (with their ID number): a case alice holds."""
    acc = account(1)
    await c.post("/api/accounts", json={"accounts": [acc], "start": True}, headers=AUTH)
    await _settle(c)
    await post_twilio(c, acc["phone"], "我11月27号还3200", "SM" + "1" * 32)
    await _settle(c)
    text = f"这笔钱我根本没借过，你们搞错了，我身份证{ID_NUMBER}"
    await post_twilio(c, acc["phone"], text, "SM" + "2" * 32)
    await _settle(c)
    desk: Desk = c.app[DESK_SERVICE]
    (case,) = await desk.list_cases("alice", "agent")
    await desk.claim("alice", "agent", acc["id"], case.id)
    return acc, desk, case


async def test_the_view_of_a_handed_off_conversation(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc, desk, case = await _handed_off(c)
        assert await desk.record_promise(
            "alice", "agent", acc["id"], case.id, date(2026, 11, 28), Decimal("3200.00")
        )
        await _settle(c)
        view = await desk.view("bob", "agent", acc["id"])
        # Masked: the number, the name, the ID number in the borrower's words.
        assert (view.phone, view.name, view.revealed) == ("+86138****0001", "张*", False)
        assert (view.state, view.case and view.case.id, view.case and view.case.holder) == (
            "with_agent",
            case.id,
            "alice",
        )
        assert {"disputed", "agent"} <= set(view.holds) and "disputed" in view.flags
        assert view.next_allowed_send is None  # on hold: nothing proactive
        assert view.give_back == {"awaiting_reply": "returned", "promised": "promised"}
        assert (view.outstanding, view.paid_total, view.opted_out) == (
            Decimal("3200.00"),
            Decimal(0),
            False,
        )
        # The borrower's replies, with what the bot understood.
        said = [i for i in view.transcript if i.direction == "in"]
        assert [i.intent for i in said] == ["promise_to_pay", "dispute"]
        assert said[0].entities["date"] == "2026-11-27" and said[0].entities["amount"] == 3200
        assert said[0].score is not None and said[0].score > 0.5
        assert said[0].intents[0]["name"] == "promise_to_pay"
        assert ID_NUMBER not in (said[1].text or "") and "1101" in (said[1].text or "")
        # The bot's messages with where they are in the send path.
        sent = [(i.template, i.state, i.by) for i in view.transcript if i.direction == "out"]
        assert sent == [
            ("first_reminder", "sent", None),
            ("promise_confirm_amount", "sent", None),
            ("dispute_ack", "sent", None),
        ]
        events = [(i.kind, i.by, i.summary) for i in view.transcript if i.direction == "event"]
        assert ("handoff", None, "转人工 Handoff: dispute (high)") in events
        assert ("agent", "alice", "记录承诺 Promise recorded: 2026-11-28 3200.00") in events
        assert [i.at for i in view.transcript] == sorted(i.at for i in view.transcript)
        # The promises: the borrower's, replaced by the one alice agreed on the phone.
        assert [(p.date, p.amount, p.source, p.by, p.outcome) for p in view.promises] == [
            (date(2026, 11, 27), Decimal(3200), "borrower", None, "replaced"),
            (date(2026, 11, 28), Decimal(3200), "agent", "alice", "pending"),
        ]
        assert view.promise == view.promises[-1]
        assert not [e for e in await store.read_audit(acc["id"]) if e.kind == "reveal"]
        # A reveal shows everything, and says who saw it and when.
        shown = await desk.view("bob", "agent", acc["id"], reveal=True)
        assert (shown.phone, shown.name, shown.revealed) == (acc["phone"], "张三", True)
        said = [i for i in shown.transcript if i.direction == "in"]
        assert ID_NUMBER in (said[1].text or "")
        reveals = [e for e in await store.read_audit(acc["id"]) if e.kind == "reveal"]
        assert [e.detail["by"] for e in reveals] == ["bob"]
        with pytest.raises(CaseNotFound):
            await desk.view("bob", "agent", "acc-9999", reveal=True)
        with pytest.raises(CaseNotFound):
            await desk.view("bob", "agent", "acc-9999")


async def test_a_promise_kept_by_a_payment(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc, desk, _ = await _handed_off(c)
        r = await c.post(
            "/api/payments",
            json={
                "account_id": acc["id"],
                "amount": "3200.00",
                "paid_at": "2026-11-25T10:00:00+08:00",
                "reference": "pay-1",
            },
            headers=AUTH,
        )
        assert r.status == 202
        await _settle(c)
        view = await desk.view("alice", "agent", acc["id"])
        assert [p.outcome for p in view.promises] == ["kept"]
        assert ("payment", "还款 Payment: 3200.00 (pay-1)") in [
            (i.kind, i.summary) for i in view.transcript
        ]


async def test_the_composer_sends_through_the_gate(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc, desk, case = await _handed_off(c)
        before = len(await store.outbound_records(acc["id"]))
        # Free text: the gate allows it now, and the sandbox delivers it.
        verdict = await desk.send_message("alice", "agent", acc["id"], case.id, text=f"  {POLITE} ")
        assert (verdict.verdict, verdict.until, verdict.text) == ("send", None, POLITE)
        assert verdict.message_id is not None
        await _settle(c)
        record = await store.outbound(acc["id"], verdict.message_id)
        assert record is not None and record.state in ("sent", "delivered")
        assert (record.message.kind, record.message.text) == ("reply", POLITE)
        sandbox = await (await c.get("/api/sandbox/messages", headers=AUTH)).json()
        assert POLITE in [m["text"] for m in sandbox]
        sends = [e.detail for e in await store.read_audit(acc["id"]) if e.kind == "send"]
        assert (sends[-1]["by"], sends[-1]["message_id"]) == ("alice", verdict.message_id)
        view = await desk.view("alice", "agent", acc["id"])
        mine = [i for i in view.transcript if i.direction == "out" and i.by == "alice"]
        assert [(i.message_id, i.state) for i in mine] == [(verdict.message_id, record.state)]
        # Prohibited wording: refused with its rule, nothing queued, audited.
        threat = "【XX金融】XX消费金融提醒：再不还钱就让你坐牢。详询95XXX。"
        refused = await desk.send_message("alice", "agent", acc["id"], case.id, text=threat)
        assert refused.verdict == "block" and refused.message_id is None
        assert "CN-CONTENT-02/false-consequence" in refused.rules
        await _settle(c)
        assert len(await store.outbound_records(acc["id"])) == before + 1
        (entry,) = [e for e in await store.read_audit(acc["id"]) if e.kind == "agent_message"]
        assert (entry.detail["by"], entry.detail["verdict"]) == ("alice", "block")
        assert "CN-CONTENT-02/false-consequence" in entry.detail["rules"]
        view = await desk.view("alice", "agent", acc["id"])
        (blocked,) = [i for i in view.transcript if i.state == "blocked"]
        assert (blocked.by, blocked.message_id) == ("alice", None)
        assert "CN-CONTENT-02/false-consequence" in blocked.rules
        # Only the case's holder (or a supervisor) writes to the borrower.
        with pytest.raises(PermissionDenied):
            await desk.send_message("bob", "agent", acc["id"], case.id, text=POLITE)
        sup = await desk.send_message("sue", "supervisor", acc["id"], case.id, text=POLITE + "谢谢")
        assert sup.verdict == "send"
        for bad in ({}, {"text": "   "}, {"text": "x" * 501}, {"text": "a", "template": "clarify"}):
            with pytest.raises(InvalidRequest):
                await desk.send_message("alice", "agent", acc["id"], case.id, **bad)
        with pytest.raises(InvalidRequest, match="no template"):
            await desk.send_message("alice", "agent", acc["id"], case.id, template="nope")


async def test_a_template_is_written_with_the_accounts_values(
    nlu: Understander, store: Store
) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc, desk, case = await _handed_off(c)
        offered = {t["name"]: t for t in await desk.templates("alice", "agent", acc["id"])}
        info = offered["account_info"]
        assert "张*您好" in info["text"] and "尾号0001" in info["text"]
        assert "3200.00元" in info["text"] and "到期日为11月24日" in info["text"]
        assert info["approved"] is False
        verdict = await desk.send_message(
            "alice", "agent", acc["id"], case.id, template="account_info"
        )
        assert (verdict.verdict, verdict.text) == ("send", info["text"])
        assert verdict.message_id is not None
        await _settle(c)
        record = await store.outbound(acc["id"], verdict.message_id)
        assert record is not None and record.state in ("sent", "delivered")
        assert (record.message.template, record.message.text) == ("account_info", info["text"])
        assert record.message.params["last4"] == "0001"


async def test_a_message_at_night_waits_for_the_morning(nlu: Understander, store: Store) -> None:
    clock = daytime_clock()
    async with client(nlu, store=store, clock=clock) as c:
        acc, desk, case = await _handed_off(c)
        # 22:30 in Shanghai.
        clock.advance(datetime(2026, 11, 25, 14, 30, tzinfo=UTC) - clock.now())
        verdict = await desk.send_message("alice", "agent", acc["id"], case.id, text=POLITE)
        morning = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
        assert (verdict.verdict, verdict.until) == ("defer", morning)
        assert verdict.rules == ["CN-TIME-01"] and verdict.message_id is not None
        await _settle(c)
        record = await store.outbound(acc["id"], verdict.message_id)
        assert record is not None
        assert (record.state, record.message.not_before) == ("deferred", morning)
        view = await desk.view("alice", "agent", acc["id"])
        (held,) = [i for i in view.transcript if i.message_id == verdict.message_id]
        assert (held.state, held.not_before, held.rules) == ("deferred", morning, ["CN-TIME-01"])
        assert [d["message_id"] for d in view.deferred] == [verdict.message_id]


async def test_an_opted_out_number_gets_nothing(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc, desk, case = await _handed_off(c)
        await store.add_opt_out(acc["phone"])  # e.g. a stop sent on another account
        verdict = await desk.send_message("alice", "agent", acc["id"], case.id, text=POLITE)
        assert (verdict.verdict, verdict.message_id) == ("block", None)
        assert verdict.rules == ["CN-OPTOUT-01"]
        view = await desk.view("alice", "agent", acc["id"])
        assert view.opted_out and view.next_allowed_send is None


async def test_two_clicks_two_messages_a_retried_event_one(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc, desk, case = await _handed_off(c)
        before = len(await store.outbound_records(acc["id"]))
        first = await desk.send_message("alice", "agent", acc["id"], case.id, text=POLITE)
        second = await desk.send_message("alice", "agent", acc["id"], case.id, text=POLITE)
        assert first.message_id != second.message_id
        await _settle(c)
        ids = [r.id for r in await store.outbound_records(acc["id"])]
        assert len(ids) == before + 2 and {first.message_id, second.message_id} <= set(ids)
        # The same message's event queued again (a retry): it is sent once.
        action = DeskAction(
            agent="alice", case_id=case.id, do="message", message_id="m-retried", text=POLITE
        )
        pipeline = c.app[PIPELINE]
        for _ in range(2):
            event = QueuedEvent(kind="agent", at=c.app[CLOCK].now(), desk=action)
            assert await pipeline.submit(acc["id"], event)
            await _settle(c)
        records = [r for r in await store.outbound_records(acc["id"]) if r.id == "m-retried"]
        assert len(records) == 1
        sends = [
            e
            for e in await store.read_audit(acc["id"])
            if e.kind == "send" and e.detail["message_id"] == "m-retried"
        ]
        assert len(sends) == 1


async def test_the_next_proactive_message_counts_the_caps(nlu: Understander, store: Store) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc = account(2)
        await c.post("/api/accounts", json={"accounts": [acc], "start": True}, headers=AUTH)
        await _settle(c)
        view = await c.app[DESK_SERVICE].view("alice", "agent", acc["id"])
        assert view.case is None and view.holds == []
        # The first reminder went out at 10:00; the cn pack allows one proactive a day.
        assert view.caps["proactive_today"] == 1
        assert view.next_allowed_send == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


def test_a_queued_message_names_its_id_and_one_text() -> None:
    for bad in (
        {"text": "a"},
        {"message_id": "m", "text": "a", "template": "clarify"},
        {"message_id": "m"},
    ):
        with pytest.raises(ValueError, match="exactly one"):
            DeskAction.model_validate({"agent": "alice", "do": "message", **bad})


async def test_a_template_that_cannot_be_written_when_applied_is_refused(
    nlu: Understander, store: Store
) -> None:
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc = account(3)
        await c.post("/api/accounts", json={"accounts": [acc], "start": True}, headers=AUTH)
        await _settle(c)
        # No promise on record: {promised_date} has no value.
        action = DeskAction(
            agent="alice", do="message", message_id="m-1", template="promise_confirm"
        )
        assert await c.app[PIPELINE].submit(
            acc["id"], QueuedEvent(kind="agent", at=c.app[CLOCK].now(), desk=action)
        )
        await _settle(c)
        assert await store.outbound(acc["id"], "m-1") is None
        (entry,) = [e for e in await store.read_audit(acc["id"]) if e.kind == "agent_message"]
        assert entry.detail["verdict"] == "block" and "promised_date" in entry.detail["reasons"][0]
        assert await store.head(acc["id"]) is None  # the event was applied, not stuck

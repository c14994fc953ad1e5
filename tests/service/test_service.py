"""The service end to end over the memory store: API, webhooks per provider, pipeline."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.context import CLOCK, PIPELINE
from intents import Understander
from tests.service.apphelpers import (
    ALIYUN_TOKEN,
    AUTH,
    TWILIO_TOKEN,
    account,
    borrower_texts,
    client,
    conversation,
    daytime_clock,
    generic_request,
    post_twilio,
    twilio_form,
)

pytestmark = pytest.mark.timeout(60)


def _calls_carrier(message: object) -> None:
    """Patched over the sandbox's ``stored_send``: its sends go through a (patched) carrier
    call as a real carrier's do, instead of being stored in the gate step."""
    return None


async def _settle(c: Any) -> None:
    await c.app[PIPELINE].idle()


async def _with_account(c: Any, i: int = 1, start: bool = True) -> dict[str, Any]:
    r = await c.post("/api/accounts", json={"accounts": [account(i)], "start": start}, headers=AUTH)
    assert r.status == 200
    await _settle(c)
    return account(i)


async def test_accounts_api_takes_good_rows_and_reports_bad_ones(nlu: Understander) -> None:
    async with client(nlu, clock=daytime_clock()) as c:
        rows = [
            account(1),
            {"id": "x"},
            account(2, phone="not-a-phone"),
            account(3, tz="Mars/Base"),
        ]
        r = await c.post("/api/accounts", json={"accounts": rows}, headers=AUTH)
        body = await r.json()
        assert r.status == 200
        assert body["created"] == 1 and body["started"] == 1
        assert [e["index"] for e in body["errors"]] == [1, 2, 3]
        assert "phone" in body["errors"][1]["error"] and "Mars/Base" in body["errors"][2]["error"]
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        assert conv["state"] == "awaiting_reply"
        sent = await (await c.get("/api/sandbox/messages", headers=AUTH)).json()
        assert len(sent) == 1 and "3200.00" in sent[0]["text"]
        # Re-sending the batch updates but never restarts the conversation.
        r = await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        assert (await r.json())["updated"] == 1
        await _settle(c)
        assert len(await (await c.get("/api/sandbox/messages", headers=AUTH)).json()) == 1


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/accounts", "post"),
        ("/api/conversations/acc-0001", "get"),
        ("/api/payments", "post"),
        ("/api/sandbox/messages", "get"),
    ],
)
async def test_api_needs_the_key(nlu: Understander, path: str, method: str) -> None:
    async with client(nlu) as c:
        r = await getattr(c, method)(path, headers={"Authorization": "Bearer wrong"})
        assert r.status == 401
        assert "API key" in (await r.json())["error"]


async def test_malformed_api_body_is_400_with_reason(nlu: Understander) -> None:
    async with client(nlu) as c:
        r = await c.post("/api/accounts", data=b"{not json", headers=AUTH)
        assert r.status == 400
        assert (await r.json())["error"]


async def test_twilio_reply_is_understood_and_answered(nlu: Understander) -> None:
    async with client(nlu, clock=daytime_clock()) as c:
        acc = await _with_account(c)
        r = await post_twilio(c, acc["phone"], "明天还500", "SM" + "1" * 32)
        assert r.status == 200
        assert "<Response/>" in await r.text()
        await _settle(c)
        conv = await conversation(c, acc["id"])
        assert conv["state"] == "promised"
        assert Decimal(conv["promise"]["amount"]) == 500
        kinds = [e["kind"] for e in conv["transcript"]]
        assert "understood" in kinds and kinds.count("sent") == 2


async def test_a_reading_is_made_once_per_nlu_answer_object(nlu: Understander) -> None:
    async with client(nlu, clock=daytime_clock()) as c:
        reading = c.app[PIPELINE].interpreter._reading
        now = daytime_clock().now()
        first = nlu.understand("下周一还800", now=now, tz="Asia/Shanghai")
        kept = nlu.understand("下周一还800", now=now, tz="Asia/Shanghai")
        assert nlu.understand("下周一还800", now=now, tz="Asia/Shanghai") is kept
        reply, understood = reading(kept)
        assert reading(kept)[0] is reply  # the same answer: the same reading
        # An equal answer that is another object is read on its own (the memo keys by
        # identity, and only while it holds the object).
        assert reading(first)[0] is not reply and reading(first)[0] == reply
        other = kept.model_copy(update={"text": "下周一还900"})
        assert reading(other)[0].text == "下周一还900"
        assert understood["intent"] == "promise_to_pay"
        assert understood["entities"]["amount"] == 800


async def test_the_conversation_quotes_the_ledger_as_it_is_now(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        assert (await conversation(c, acc["id"]))["outstanding"] == "3200.00"
        # The lender's ledger changes (a partial repayment booked elsewhere); the next event
        # steps a conversation that quotes the new amount.
        updated = {**acc, "amount_due": "1500.00"}
        r = await c.post("/api/accounts", json={"accounts": [updated]}, headers=AUTH)
        assert r.status == 200
        await post_twilio(c, acc["phone"], "还差多少", "SM" + "7" * 32)
        await _settle(c)
        assert (await conversation(c, acc["id"]))["outstanding"] == "1500.00"


async def test_forged_twilio_request_is_refused_and_changes_nothing(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        r = await post_twilio(c, acc["phone"], "退订", "SM" + "2" * 32, signature="Zm9yZ2Vk")
        assert r.status == 403
        assert "signature" in (await r.json())["error"].lower()
        await _settle(c)
        conv = await conversation(c, acc["id"])
        assert borrower_texts(conv) == [] and conv["state"] == "awaiting_reply"


async def test_provider_retries_are_acknowledged_but_processed_once(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        sid = "SM" + "3" * 32
        for _ in range(3):
            assert (await post_twilio(c, acc["phone"], "好的", sid)).status == 200
        await _settle(c)
        assert borrower_texts(await conversation(c, acc["id"])) == ["好的"]


async def test_aliyun_probe_batch_and_token(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        probe = await c.get(f"/webhooks/aliyun/{ALIYUN_TOKEN}")
        assert probe.status == 200 and (await probe.json())["code"] == 0
        batch = [
            {
                "phone_number": acc["phone"][3:],
                "content": "我失业了",
                "send_time": "2026-12-02 10:00:00",
                "dest_code": "1234",
                "sequence_id": 1001,
                "sign_name": "XX金融",
            },
            {
                "phone_number": "13912345678",
                "content": "你们是谁",
                "send_time": "2026-12-02 10:00:01",
                "dest_code": "1234",
                "sequence_id": "1002",
            },
        ]
        r = await c.post(f"/webhooks/aliyun/{ALIYUN_TOKEN}", json=batch)
        assert r.status == 200
        assert await r.json() == {"code": 0, "msg": "接收成功"}
        assert (await c.post("/webhooks/aliyun/wrong-token", json=batch)).status == 403
        assert (await c.post("/webhooks/aliyun", json=batch)).status == 403
        bad = await c.post(f"/webhooks/aliyun/{ALIYUN_TOKEN}", data=b"[{]")
        assert bad.status == 400
        await _settle(c)
        assert borrower_texts(await conversation(c, acc["id"])) == ["我失业了"]
        unmatched = await (await c.get("/api/unmatched", headers=AUTH)).json()
        assert [u["text"] for u in unmatched] == ["你们是谁"]  # kept for agents, never dropped


async def test_tencent_ip_allow_list(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        body = {
            "extend": "",
            "mobile": acc["phone"][3:],
            "nationcode": "86",
            "sign": "XX金融",
            "text": "转人工",
            "time": 1764640800,
        }
        r = await c.post("/webhooks/tencent", json=body)
        assert r.status == 200
        assert await r.json() == {"result": 0, "errmsg": "OK"}
        await _settle(c)
        assert borrower_texts(await conversation(c, acc["id"])) == ["转人工"]
    async with client(nlu, tencent_allowed_ips=["10.9.8.7"]) as c:
        r = await c.post("/webhooks/tencent", json=body)
        assert r.status == 403


async def test_generic_signed_and_replay_window(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        body, headers = generic_request("g-1", acc["phone"], "这几天就还")
        assert (await c.post("/webhooks/generic", data=body, headers=headers)).status == 200
        old_body, old_headers = generic_request(
            "g-2", acc["phone"], "还", ts=int(time.time()) - 3600
        )
        r = await c.post("/webhooks/generic", data=old_body, headers=old_headers)
        assert r.status == 403
        forged_body, forged_headers = generic_request("g-3", acc["phone"], "还", secret="guess")
        assert (
            await c.post("/webhooks/generic", data=forged_body, headers=forged_headers)
        ).status == 403
        bad_body = b'{"id": "g-4"}'
        _, h = generic_request("g-4", acc["phone"], "x")
        import hashlib
        import hmac

        h["X-Smsbot-Signature"] = hmac.new(
            b"generic-test-secret",
            h["X-Smsbot-Timestamp"].encode() + b"." + bad_body,
            hashlib.sha256,
        ).hexdigest()
        r = await c.post("/webhooks/generic", data=bad_body, headers=h)
        assert r.status == 400
        assert (await r.json())["error"]
        await _settle(c)
        assert borrower_texts(await conversation(c, acc["id"])) == ["这几天就还"]


async def test_unconfigured_provider_is_refused(nlu: Understander) -> None:
    async with client(nlu, twilio_auth_token=None) as c:
        r = await post_twilio(c, "+8613800000001", "hi", "SM" + "4" * 32)
        assert r.status == 403


async def test_oversize_body_is_413(nlu: Understander) -> None:
    async with client(nlu, max_body_bytes=2048) as c:
        r = await c.post(f"/webhooks/aliyun/{ALIYUN_TOKEN}", data=b"[" + b" " * 5000 + b"]")
        assert r.status == 413
        assert "too large" in (await r.json())["error"]


async def test_concurrent_replies_are_processed_one_at_a_time_in_order(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        texts = ["你好", "我想问下", "还差多少", "好的"]
        requests = [generic_request(f"o-{i}", acc["phone"], t) for i, t in enumerate(texts)]
        results = await asyncio.gather(
            *(c.post("/webhooks/generic", data=b, headers=h) for b, h in requests)
        )
        assert all(r.status == 200 for r in results)
        await _settle(c)
        conv = await conversation(c, acc["id"])
        assert sorted(borrower_texts(conv)) == sorted(texts)
        steps = [e["detail"] for e in conv["transcript"] if e["kind"] == "step"]
        # Serial processing: every step starts from the state the previous one left.
        assert all(a["after"] == b["before"] for a, b in itertools.pairwise(steps))


async def test_payment_is_idempotent_by_reference(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        pay = {
            "account_id": acc["id"],
            "amount": "3200.00",
            "paid_at": "2026-12-02T10:00:00+08:00",
            "reference": "PAY-1",
        }
        first = await c.post("/api/payments", json=pay, headers=AUTH)
        again = await c.post("/api/payments", json=pay, headers=AUTH)
        assert (await first.json())["status"] == "accepted"
        assert (await again.json())["status"] == "duplicate"
        await _settle(c)
        conv = await conversation(c, acc["id"])
        assert conv["paid_total"] == "3200.00" and conv["outstanding"] == "0.00"
        assert conv["state"] == "paid"


async def test_stop_opts_the_number_out(nlu: Understander) -> None:
    async with client(nlu) as c:
        acc = await _with_account(c)
        await post_twilio(c, acc["phone"], "TD", "SM" + "5" * 32)
        await _settle(c)
        conv = await conversation(c, acc["id"])
        assert conv["opted_out"] is True and "opted_out" in conv["flags"]


async def test_stop_after_payment_reaches_the_suppression_list(nlu: Understander) -> None:
    """Issue 16: a paid (closed) case still honours 退订: the number is suppressed for every
    account, the confirmation goes out, and the case stays paid."""
    from bot.context import STORE

    async with client(nlu, clock=daytime_clock()) as c:
        acc = await _with_account(c)
        pay = {"account_id": acc["id"], "amount": "3200.00", "reference": "PAY-stop"}
        pay["paid_at"] = c.app[CLOCK].now().isoformat()
        assert (await c.post("/api/payments", json=pay, headers=AUTH)).status == 202
        await _settle(c)
        assert (await conversation(c, acc["id"]))["state"] == "paid"
        await post_twilio(c, acc["phone"], "退订", "SM" + "6" * 32)
        await _settle(c)
        conv = await conversation(c, acc["id"])
        assert conv["state"] == "paid" and conv["opted_out"] is True
        assert await c.app[STORE].is_opted_out(acc["phone"]) is True
        sent = [m.template for m in await c.app[STORE].list_sandbox()]
        assert sent[-1] == "stop_confirm"


async def test_a_payment_receipt_is_a_reply_not_held_by_the_collection_cap(
    nlu: Understander,
) -> None:
    """Issue 16: the first reminder used today's one proactive message; the receipt of the
    borrower's partial payment the same day answers their own action and goes at once."""
    from bot.context import STORE

    async with client(nlu, clock=daytime_clock()) as c:
        body = {"accounts": [account(1)], "start": True}
        assert (await c.post("/api/accounts", json=body, headers=AUTH)).status == 200
        await _settle(c)
        pay = {"account_id": "acc-0001", "amount": "500.00", "reference": "PAY-part"}
        pay["paid_at"] = c.app[CLOCK].now().isoformat()
        assert (await c.post("/api/payments", json=pay, headers=AUTH)).status == 202
        await _settle(c)
        records = {r.message.template: r for r in await c.app[STORE].outbound_records("acc-0001")}
        assert records["first_reminder"].state == "sent"
        receipt = records["payment_partial"]
        assert (receipt.state, receipt.message.kind) == ("sent", "reply")


async def test_health_ready_and_openapi(nlu: Understander) -> None:
    async with client(nlu) as c:
        assert (await c.get("/healthz")).status == 200
        ready = await c.get("/readyz")
        assert ready.status == 200 and (await ready.json())["ready"] is True
        doc = await (await c.get("/api/openapi.json")).json()
        assert doc["openapi"].startswith("3.")
        assert {"/api/accounts", "/api/payments", "/api/conversations/{account_id}"} <= set(
            doc["paths"]
        )
        assert "AccountRecord" in doc["components"]["schemas"]
        json.dumps(doc)


async def test_an_event_that_cannot_be_processed_is_audited_and_does_not_block_the_queue(
    nlu: Understander,
) -> None:
    from bot.context import STORE
    from bot.records import AccountRecord, QueuedEvent

    async with client(nlu) as c:
        store = c.app[STORE]
        broken = AccountRecord.model_validate({**account(1), "flow": "no_such_flow"})
        await store.upsert_account(broken)
        await c.app[PIPELINE].submit("acc-0001", QueuedEvent(kind="start", at=_now()))
        await _settle(c)
        assert await store.head("acc-0001") is None  # not stuck at the head
        audit = await store.read_audit("acc-0001")
        assert audit[-1].kind == "error" and "no_such_flow" in audit[-1].detail["error"]
        assert await store.get_conversation("acc-0001") is None
        await store.upsert_account(AccountRecord.model_validate(account(1)))  # operator fixes it
        await post_twilio(c, account(1)["phone"], "明天还", "SM" + "9" * 32)
        await _settle(c)
        assert borrower_texts(await conversation(c, "acc-0001")) == ["明天还"]


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_a_carrier_that_raises_leaves_the_message_to_reconcile_and_the_others_go(
    nlu: Understander,
) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.clock import Clock
    from bot.context import SENDER, STORE
    from bot.outbound.carriers.base import SendOutcome
    from bot.records import AccountRecord, Outbound, QueuedEvent

    # 10:00 in Shanghai: inside the sending window, so the gate sends rather than defers.
    clock = Clock(datetime(2026, 11, 25, 2, 0, tzinfo=UTC) - datetime.now(UTC))
    async with client(nlu, clock=clock) as c:
        store, pipeline, sender = c.app[STORE], c.app[PIPELINE], c.app[SENDER]
        await store.upsert_account(AccountRecord.model_validate(account(1)))
        # Two events drained together: the reminder and the reply's answer leave in one flush.
        await store.enqueue("acc-0001", QueuedEvent(kind="start", at=clock.now()))
        reply = QueuedEvent.model_validate(
            {
                "kind": "inbound",
                "at": clock.now(),
                "inbound": {
                    "provider": "twilio",
                    "msg_id": "SM-fail-1",
                    "phone": account(1)["phone"],
                    "to": "+15550000000",
                    "text": "明天还3200",
                    "sent_at": clock.now(),
                    "received_at": clock.now(),
                },
            }
        )
        await store.enqueue("acc-0001", reply)
        sandbox = sender.carriers["sandbox"]
        send = sandbox.send_outbound
        calls: list[str] = []

        async def first_fails(msg: Outbound) -> SendOutcome:
            calls.append(msg.id)
            if msg.template.startswith("promise_confirm") and calls.count(msg.id) == 1:
                raise RuntimeError("carrier client bug")
            return await send(msg)

        sandbox.send_outbound = first_fails  # type: ignore[method-assign]
        sandbox.stored_send = _calls_carrier  # type: ignore[method-assign]
        pipeline.kick("acc-0001")
        await _settle(c)
        assert len(calls) == 2  # the other message was not lost with the failing one
        confirm = next(
            r.id
            for r in await store.outbound_records("acc-0001")
            if r.message.template.startswith("promise_confirm")
        )
        reminder = next(m for m in calls if m != confirm)
        audit = await store.read_audit("acc-0001")
        # The request may have left before the client failed: never resent blindly.
        ambiguous = [e for e in audit if e.kind == "ambiguous"]
        assert [e.detail["message_id"] for e in ambiguous] == [confirm]
        assert "carrier client bug" in ambiguous[0].detail["detail"]
        sent = [e.detail["message_id"] for e in audit if e.kind == "sent"]
        assert sent == [reminder]
        assert await store.queued("acc-0001") == []
        first = await store.outbound("acc-0001", confirm)
        assert first is not None and first.state == "sending" and first.ambiguous

        # After the reconcile delay the carrier is asked: it never had it, so it goes back
        # through the gate (which sends it: the conversation is where it was) and leaves.
        clock.advance(timedelta(seconds=sender.policy.reconcile_after_s + 1))
        await sender.poll()
        await _settle(c)
        assert sorted(calls) == sorted([reminder, confirm, confirm])
        first = await store.outbound("acc-0001", confirm)
        assert first is not None and first.state == "sent" and first.attempts == 2
        kinds = [
            e.kind
            for e in await store.read_audit("acc-0001")
            if e.detail.get("message_id") == confirm
        ]
        assert kinds[-5:] == ["reconcile", "absent", "gate", "sending", "sent"]


async def test_a_send_in_doubt_is_never_resent_after_the_borrower_opted_out(
    nlu: Understander,
) -> None:
    """A first reminder's call fails in doubt; meanwhile the borrower texts 退订. When the
    carrier says it never had the reminder, the reminder is judged again — and not sent."""
    from datetime import timedelta

    from bot.context import SENDER, STORE
    from bot.outbound.carriers.base import SendOutcome
    from bot.records import Outbound

    async with client(nlu, clock=daytime_clock()) as c:
        store, sender = c.app[STORE], c.app[SENDER]
        sandbox = sender.carriers["sandbox"]
        send = sandbox.send_outbound
        calls: list[str] = []

        async def reminder_in_doubt(msg: Outbound) -> SendOutcome:
            calls.append(msg.template)
            if msg.template == "first_reminder":
                return SendOutcome(status="ambiguous", code="timeout")
            return await send(msg)

        sandbox.send_outbound = reminder_in_doubt  # type: ignore[method-assign]
        sandbox.stored_send = _calls_carrier  # type: ignore[method-assign]
        body = {"accounts": [account(1)], "start": True}
        assert (await c.post("/api/accounts", json=body, headers=AUTH)).status == 200
        await _settle(c)
        await post_twilio(c, account(1)["phone"], "退订", "SM" + "5" * 32)
        await _settle(c)
        assert (await conversation(c, "acc-0001"))["opted_out"] is True
        assert calls == ["first_reminder", "stop_confirm"]
        c.app[CLOCK].advance(timedelta(seconds=sender.policy.reconcile_after_s + 1))
        await sender.poll()
        await _settle(c)
        assert calls == ["first_reminder", "stop_confirm"]  # never again
        reminder = next(
            r
            for r in await store.outbound_records("acc-0001")
            if r.message.template == "first_reminder"
        )
        assert reminder.state in ("superseded", "blocked")


async def test_a_slow_carrier_holds_no_lock_and_delays_no_other_reply(nlu: Understander) -> None:
    """A provider call in flight (carriers take seconds) holds neither the account's lock nor
    a drain: the same borrower's next reply and another borrower's are processed meanwhile."""
    from bot.context import SENDER, STORE
    from bot.outbound.carriers.base import SendOutcome
    from bot.records import Outbound

    async with client(nlu, clock=daytime_clock()) as c:
        sandbox = c.app[SENDER].carriers["sandbox"]
        send = sandbox.send_outbound
        release = asyncio.Event()
        in_flight: list[str] = []

        async def slow(msg: Outbound) -> SendOutcome:
            in_flight.append(msg.template)
            await release.wait()
            return await send(msg)

        sandbox.send_outbound = slow  # type: ignore[method-assign]
        sandbox.stored_send = _calls_carrier  # type: ignore[method-assign]
        rows = [account(1), account(2)]
        assert (
            await c.post("/api/accounts", json={"accounts": rows, "start": True}, headers=AUTH)
        ).status == 200
        for _ in range(50):  # both first reminders reach the carrier, which holds them
            if len(in_flight) == 2:
                break
            await asyncio.sleep(0.02)
        assert in_flight == ["first_reminder", "first_reminder"]
        await post_twilio(c, account(1)["phone"], "明天还3200", "SM" + "1" * 32)
        await post_twilio(c, account(2)["phone"], "我失业了，暂时还不上", "SM" + "2" * 32)
        for _ in range(100):
            one, two = await conversation(c, "acc-0001"), await conversation(c, "acc-0002")
            if one["state"] == "promised" and two["state"] != "awaiting_reply":
                break
            await asyncio.sleep(0.02)
        assert one["state"] == "promised"  # processed while its own first reminder is in flight
        assert two["state"] != "awaiting_reply"
        store = c.app[STORE]
        waiting = [r.state for r in await store.outbound_records("acc-0001")]
        assert waiting[0] == "sending"
        release.set()
        await _settle(c)
        states = [r.state for r in await store.outbound_records("acc-0001")]
        assert states and set(states) == {"sent"}


@pytest.mark.parametrize(
    ("rate", "call", "versions", "kinds"),
    [
        (None, False, 1, ["send", "gate", "sent"]),
        (None, True, 2, ["send", "gate", "sending", "sent"]),
        ({"sandbox": 1000.0}, False, 3, ["send", "gate", "sending", "sent"]),
    ],
)
async def test_a_free_carrier_slot_reserves_and_claims_in_one_step(
    nlu: Understander, rate: dict[str, float] | None, call: bool, versions: int, kinds: list[str]
) -> None:
    """The sandbox's send is a write to the store: reserved, sent and recorded in the gate
    step's one store write. A carrier that must be called, with a slot free and no shared rate
    to ask: the gate step stores the send as claimed (one store write less); with a rate, a
    sender task takes a token first, then claims."""
    from bot.context import SENDER, STORE

    extra = {"send_rate": rate} if rate else {}
    async with client(nlu, clock=daytime_clock(), **extra) as c:
        if call:
            c.app[SENDER].carriers["sandbox"].stored_send = _calls_carrier  # type: ignore[method-assign]
        body = {"accounts": [account(1)], "start": True}
        assert (await c.post("/api/accounts", json=body, headers=AUTH)).status == 200
        await _settle(c)
        (record,) = await c.app[STORE].outbound_records("acc-0001")
        assert (record.state, record.version, record.attempts) == ("sent", versions, 1)
        got = [
            e.kind
            for e in await c.app[STORE].read_audit("acc-0001")
            if e.detail.get("message_id") == record.id
        ]
        assert got == kinds
        (sent,) = await c.app[STORE].list_sandbox()
        assert sent.id == record.id and record.provider_id == f"sandbox:{record.id}"


async def test_twilio_form_with_repeated_parameters_signed_by_twilios_library(
    nlu: Understander,
) -> None:
    # A picture message: MediaUrl repeated, out of order. Twilio's RequestValidator signs each
    # name's values sorted; the webhook must accept that signature (issue 16, item 17).
    from multidict import MultiDict
    from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

    async with client(nlu, clock=daytime_clock()) as c:
        acc = await _with_account(c)
        pairs = [
            *twilio_form(acc["phone"], "明天还500", "SM" + "8" * 32).items(),
            ("MediaUrl", "https://api.twilio.com/m/2"),
            ("MediaUrl", "https://api.twilio.com/m/1"),
        ]
        url = "https://sms.example.cn/webhooks/twilio"
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, MultiDict(pairs))
        r = await c.post(
            "/webhooks/twilio",
            data=urlencode(pairs),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        assert r.status == 200, await r.text()

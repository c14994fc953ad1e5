"""The gate inside the running service: deferral, supersession, opt-out, audit and status."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.context import PIPELINE
from intents import Understander
from tests.service.apphelpers import AUTH, account, client, conversation, post_twilio

SH = ZoneInfo("Asia/Shanghai")


def clock_at(when: datetime) -> Clock:
    return Clock(when - Clock().now())


async def _settle(c: Any) -> None:
    await asyncio.sleep(0.15)  # the timer loop runs every 50 ms in tests
    await c.app[PIPELINE].idle()


def _gate(conv: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["detail"] for e in conv["transcript"] if e["kind"] == "gate"]


async def _sent(c: Any) -> list[dict[str, Any]]:
    return await (await c.get("/api/sandbox/messages", headers=AUTH)).json()  # type: ignore[no-any-return]


async def test_a_reply_at_2130_goes_out_after_0800(nlu: Understander) -> None:
    clock = clock_at(datetime(2026, 12, 2, 10, 0, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        assert [m["template"] for m in await _sent(c)] == ["first_reminder"]
        clock.advance(timedelta(hours=11, minutes=30))  # 21:30
        await post_twilio(c, account(1)["phone"], "还差多少", "SM" + "a" * 32)
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        deferred = _gate(conv)[-1]
        assert deferred["verdict"] == "defer" and deferred["rules"] == ["CN-TIME-01"]
        assert datetime.fromisoformat(deferred["until"]) == datetime(2026, 12, 3, 8, 0, tzinfo=SH)
        assert conv["compliance"]["deferred"][0]["template"] == "account_info"
        assert len(await _sent(c)) == 1  # nothing at night
        clock.advance(timedelta(hours=10, minutes=31))  # 08:01 next day
        await _settle(c)
        sent = await _sent(c)
        assert [m["template"] for m in sent] == ["first_reminder", "account_info"]


async def test_a_deferred_message_is_dropped_if_the_borrower_paid_meanwhile(
    nlu: Understander,
) -> None:
    clock = clock_at(datetime(2026, 12, 2, 21, 30, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        assert await _sent(c) == []  # the first reminder waits for the morning too
        clock.advance(timedelta(hours=1))
        pay = {
            "account_id": "acc-0001",
            "amount": "3200.00",
            "paid_at": clock.now().isoformat(),
            "reference": "P-1",
        }
        await c.post("/api/payments", json=pay, headers=AUTH)
        await _settle(c)
        clock.advance(timedelta(hours=10))  # 08:30
        await _settle(c)
        sent = [m["template"] for m in await _sent(c)]
        assert sent == ["thanks_paid"]  # the reminder was superseded, the thanks goes out
        conv = await conversation(c, "acc-0001")
        assert any(e["kind"] == "superseded" for e in conv["transcript"])


async def test_opt_out_is_honoured_across_accounts(nlu: Understander) -> None:
    clock = clock_at(datetime(2026, 12, 2, 10, 0, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        same_phone = account(2, phone=account(1)["phone"], id="acc-0002")
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        await post_twilio(c, account(1)["phone"], "TD", "SM" + "b" * 32)
        await _settle(c)
        await c.post("/api/accounts", json={"accounts": [same_phone]}, headers=AUTH)
        await _settle(c)
        conv = await conversation(c, "acc-0002")
        blocked = _gate(conv)[-1]
        assert blocked["verdict"] == "block" and blocked["rules"] == ["CN-OPTOUT-01"]
        assert conv["compliance"]["opted_out"] is True


async def test_stated_quiet_times_are_recorded_and_honoured(nlu: Understander) -> None:
    clock = clock_at(datetime(2026, 12, 2, 10, 0, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        await post_twilio(c, account(1)["phone"], "晚上别发短信，我明天还", "SM" + "c" * 32)
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        assert conv["compliance"]["preferences"]
        assert (
            any(e["kind"] == "preference" for e in conv["transcript"])
            or conv["compliance"]["preferences"]
        )


async def test_a_first_reminder_held_overnight_leaves_with_the_next_days_figures(
    nlu: Understander,
) -> None:
    """Issue 16: a deferred message whose values change daily is written again for the day it
    leaves (逾期8天 at 21:30 is 逾期9天 at 08:00)."""
    clock = clock_at(datetime(2026, 12, 2, 21, 30, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        assert await _sent(c) == []
        conv = await conversation(c, "acc-0001")
        written = next(e for e in conv["transcript"] if e["kind"] == "send")["detail"]["text"]
        clock.advance(timedelta(hours=10, minutes=31))  # 08:01 on 12-03
        await _settle(c)
        (sent,) = await _sent(c)
        assert "逾期8天" in written and "逾期9天" in sent["text"], (written, sent["text"])


async def test_a_message_true_on_one_day_only_is_dropped_the_next(nlu: Understander) -> None:
    """Issue 16: 今天是您约定的还款日, held by the daily cap, never goes out the next morning."""
    clock = clock_at(datetime(2026, 12, 2, 8, 30, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        await post_twilio(c, account(1)["phone"], "今天还", "SM" + "d" * 32)
        await _settle(c)
        clock.advance(timedelta(hours=1, minutes=1))  # 09:31: the promise-day reminder fires
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        held = _gate(conv)[-1]
        assert held["template"] == "promise_day_reminder" and held["verdict"] == "defer"
        clock.advance(timedelta(hours=23))  # 08:31 the next day
        await _settle(c)
        assert "promise_day_reminder" not in [m["template"] for m in await _sent(c)]
        conv = await conversation(c, "acc-0001")
        dropped = [e for e in conv["transcript"] if e["kind"] == "superseded"]
        assert dropped and "2026-12-02 only" in dropped[-1]["detail"]["detail"]


async def test_the_simulator_shows_a_deferral_in_the_borrowers_time(nlu: Understander) -> None:
    """Issue 16: the gate's `until` is UTC; the simulator says 08:00 Beijing, not 00:00."""
    clock = clock_at(datetime(2026, 12, 2, 21, 30, tzinfo=SH))
    async with client(nlu, clock=clock, demo=True) as c:
        await _settle(c)  # demo borrowers' first reminders: held until the morning
        view = await (await c.get("/simulator/api/state/demo-0001")).json()
        (held,) = [e for e in view["transcript"] if e.get("kind") == "gate"]
        assert held["detail"]["until_local"] == "12-03 08:00"
        assert "deferred to 12-03 08:00" in held["text"]
        (record,) = view["messages"].values()
        assert record["state"] == "deferred"


async def test_a_timeout_counts_from_when_the_follow_up_left(nlu: Understander) -> None:
    """Issue 16: the gentle reminder is held a day by the phone's daily cap; the 3 days
    without an answer that follow it count from when it left, not from when it was written."""
    clock = clock_at(datetime(2026, 12, 2, 10, 0, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        clock.advance(timedelta(minutes=5))
        await post_twilio(c, account(1)["phone"], "好的", "SM" + "e" * 32)
        await _settle(c)
        assert (await conversation(c, "acc-0001"))["state"] == "acknowledged"
        # 12-04 10:00: a second loan on the same phone takes that day's proactive message.
        clock.advance(timedelta(days=2) - timedelta(minutes=5))
        other = account(2, phone=account(1)["phone"])
        await c.post("/api/accounts", json={"accounts": [other]}, headers=AUTH)
        await _settle(c)
        clock.advance(timedelta(minutes=6))  # 10:06: acc-0001's gentle reminder is held
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        assert conv["state"] == "follow_up_sent"
        assert _gate(conv)[-1]["verdict"] == "defer"
        clock.advance(timedelta(hours=22))  # 12-05 08:06: it leaves
        await _settle(c)
        assert "gentle_reminder" in [m["template"] for m in await _sent(c)]
        clock.advance(timedelta(days=2, hours=2, minutes=30))  # 12-07 10:36: 3 days after 10:05
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        assert conv["state"] == "follow_up_sent"  # not yet: it left on 12-05 08:00
        moved = [e for e in conv["transcript"] if e["kind"] == "timer_moved"]
        assert moved and moved[-1]["detail"]["template"] == "gentle_reminder"
        clock.advance(timedelta(hours=22))  # 12-08 08:36: 3 days after it left
        await _settle(c)
        assert (await conversation(c, "acc-0001"))["state"] == "with_agent"


async def test_a_wrong_number_is_suppressed_for_every_account_on_it(nlu: Understander) -> None:
    """Issue 16: 打错了 suppresses the number like a stop (the apology still goes, once): a
    second loan on the same phone sends it nothing."""
    clock = clock_at(datetime(2026, 12, 2, 10, 0, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        await post_twilio(c, account(1)["phone"], "你们发错人了，我不认识这个人", "SM" + "f" * 32)
        await _settle(c)
        assert [m["template"] for m in await _sent(c)] == ["first_reminder", "wrong_number_apology"]
        same_phone = account(2, phone=account(1)["phone"], id="acc-0002")
        await c.post("/api/accounts", json={"accounts": [same_phone]}, headers=AUTH)
        await _settle(c)
        blocked = _gate(await conversation(c, "acc-0002"))[-1]
        assert blocked["verdict"] == "block" and blocked["rules"] == ["CN-OPTOUT-01"]
        assert len(await _sent(c)) == 2


async def test_a_reminder_written_at_night_counts_its_two_days_from_when_it_left(
    nlu: Understander,
) -> None:
    """From a borrower-journey trial: a first reminder written at 01:14 is held until 08:00.
    Its "2 days without an answer" were due at 08:00 on the third day (01:14 + 2 days, moved
    into the window) and were then shifted by the 6 h 46 min hold, to 14:46. They count from
    when it left: 08:00."""
    clock = clock_at(datetime(2026, 12, 2, 1, 14, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        assert await _sent(c) == []  # held for the night
        clock.advance(timedelta(hours=6, minutes=46))  # 08:00
        await _settle(c)
        assert [m["template"] for m in await _sent(c)] == ["first_reminder"]
        clock.advance(timedelta(days=2, minutes=1))  # 12-04 08:01: two days after it left
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        assert conv["state"] == "follow_up_sent", conv["timers"]
        assert [m["template"] for m in await _sent(c)] == ["first_reminder", "follow_up"]
        (moved,) = [e["detail"] for e in conv["transcript"] if e["kind"] == "timer_moved"]
        left = datetime(2026, 12, 2, 8, 0, tzinfo=SH)  # and the seconds the test took
        assert timedelta(0) <= datetime.fromisoformat(moved["due"]) - left - timedelta(days=2)
        assert datetime.fromisoformat(moved["due"]) - left - timedelta(days=2) < timedelta(
            minutes=1
        )


async def _promise_at_night(c: Any, clock: Clock, text: str, day: str) -> dict[str, Any]:
    """A borrower with a reminder at 10:00 promises at 22:30 (the confirmation is held)."""
    await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
    await _settle(c)
    clock.advance(timedelta(hours=12, minutes=30))  # 22:30
    await post_twilio(c, account(1)["phone"], text, "SM" + "f" * 32)
    await _settle(c)
    conv = await conversation(c, "acc-0001")
    assert conv["state"] == "promised" and conv["promise"]["date"] == day
    return conv


async def test_a_promise_check_on_a_date_does_not_move_with_a_held_confirmation(
    nlu: Understander,
) -> None:
    """From the same trial: 明天还 at 22:30 is confirmed at 08:00 (held for the night); the
    check the day after the promised day (10:00) was shifted by that 9 h 30 min hold to
    19:30. A timer on a date never moves."""
    clock = clock_at(datetime(2026, 12, 2, 10, 0, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        conv = await _promise_at_night(c, clock, "明天还", "2026-12-03")
        check = datetime(2026, 12, 4, 10, 0, tzinfo=SH)
        assert datetime.fromisoformat(conv["timers"]["timeout"]) == check
        clock.advance(timedelta(hours=9, minutes=31))  # 12-03 08:01: the confirmation leaves
        await _settle(c)
        assert "promise_confirm" in [m["template"] for m in await _sent(c)]
        clock.advance(timedelta(days=1, hours=2))  # 12-04 10:01: the check is due
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        assert not [e for e in conv["transcript"] if e["kind"] == "timer_moved"]
        assert conv["state"] != "promised" or "timeout" not in conv["timers"], conv["timers"]


async def test_a_confirmation_held_past_the_promised_day_is_dropped(nlu: Understander) -> None:
    """From a borrower's trial: 今晚还 at 22:30 was confirmed the next morning as "已记录您计划
    于12月2日还款，届时…", naming a day gone. The held confirmation is dropped instead, and the
    audit says why; the bare day 16号, answered then, is confirmed for that day."""
    clock = clock_at(datetime(2026, 12, 2, 10, 0, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await _promise_at_night(c, clock, "今晚还", "2026-12-02")
        clock.advance(timedelta(hours=9, minutes=31))  # 12-03 08:01: the hold ends
        await _settle(c)
        assert "promise_confirm" not in [m["template"] for m in await _sent(c)]
        conv = await conversation(c, "acc-0001")
        dropped = [e for e in conv["transcript"] if e["kind"] == "superseded"]
        assert [e["detail"] for e in dropped] == [
            {
                "message_id": dropped[0]["detail"]["message_id"],
                "template": "promise_confirm",
                "detail": "the day it speaks of, 2026-12-02, is past",
            }
        ]
        await post_twilio(c, account(1)["phone"], "16号吧", "SM" + "d" * 32)
        await _settle(c)
        conv = await conversation(c, "acc-0001")
        assert conv["promise"]["date"] == "2026-12-16", conv["promise"]
        assert "12月16日" in (await _sent(c))[-1]["text"]


async def test_the_same_answer_asked_twice_is_not_sent_again_the_next_day(
    nlu: Understander,
) -> None:
    """From a borrower-journey trial: asked twice in a row, the second identical answer was
    held by the same-text gap and arrived unasked the next day. It is dropped instead."""
    clock = clock_at(datetime(2026, 12, 2, 10, 0, tzinfo=SH))
    async with client(nlu, clock=clock) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        for i, text in enumerate(["还差多少钱", "到底还差多少"]):
            clock.advance(timedelta(minutes=5))
            await post_twilio(c, account(1)["phone"], text, "SM" + f"{i}" * 32)
            await _settle(c)
        conv = await conversation(c, "acc-0001")
        verdicts = [(g["template"], g["verdict"]) for g in _gate(conv)]
        assert verdicts[-2:] == [("account_info", "send"), ("account_info", "block")]
        assert _gate(conv)[-1]["rules"] == ["CN-FREQ-04"]
        clock.advance(timedelta(days=1))
        await _settle(c)
        sent = [m["template"] for m in await _sent(c)]
        assert sent.count("account_info") == 1, sent

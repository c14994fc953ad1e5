"""The engine on pinned replies: no NLU, no I/O, a clock we pass in."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from dialogs_support import ACCOUNT, SHANGHAI, T0, reply, sends

from dialogs import conversation as c
from dialogs import machine
from dialogs.engine import (
    CompiledFlow,
    EngineError,
    choose_intent,
    into_window,
    new_conversation,
    run_until,
    step,
)
from dialogs.schema import Flag


def started(cf: CompiledFlow) -> c.Conversation:
    conv, _ = step(cf, new_conversation(cf, ACCOUNT, "conv-1"), c.Start(), T0)
    return conv


def test_start_sends_the_first_reminder_with_account_values(collections: CompiledFlow) -> None:
    conv, actions = step(collections, new_conversation(collections, ACCOUNT, "x"), c.Start(), T0)
    (send,) = sends(actions)
    assert conv.state == "awaiting_reply"
    assert send.text.startswith("【XX金融】张*您好，您尾号1234的借款待还3200.00元，已逾期7天")
    assert send.params == {
        "name": "张*",
        "last4": "1234",
        "amount_due": "3200.00",
        "days_overdue": "7",
    }
    assert (send.length, send.segments, send.debt_content) == (len(send.text), 2, True)
    assert conv.timers == {"timeout": T0 + timedelta(days=2)}
    assert conv.started_at == T0


def test_step_is_deterministic_and_does_not_mutate_its_input(collections: CompiledFlow) -> None:
    conv = started(collections)
    before = conv.model_dump_json()
    event = reply("promise_to_pay", date=date(2026, 12, 3))
    first = step(collections, conv, event, T0)
    second = step(collections, conv, event, T0)
    assert first == second
    assert conv.model_dump_json() == before


def test_conversation_round_trips_through_json(collections: CompiledFlow) -> None:
    conv, _ = step(
        collections,
        started(collections),
        reply("promise_to_pay", date=date(2026, 12, 3), amount=500.0),
        T0,
    )
    again = c.Conversation.model_validate_json(conv.model_dump_json())
    assert again == conv
    assert again.promise is not None
    assert again.promise.amount == Decimal("500")


def test_steps_fire_on_the_prebuilt_machine(
    collections: CompiledFlow, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_new_machines(*args: object, **kwargs: object) -> None:
        raise AssertionError("a machine was built during a step")

    monkeypatch.setattr(machine, "Machine", no_new_machines)
    conv, _ = step(collections, started(collections), reply("acknowledge"), T0)
    assert conv.state == "acknowledged"


def test_stop_anywhere_in_the_reply_wins() -> None:
    assert choose_intent(reply("promise_to_pay", "stop"), 0.0) == "stop"
    assert choose_intent(reply("ask_info", "wrong_number"), 0.0) == "wrong_number"
    assert choose_intent(reply("request_plan", "promise_to_pay"), 0.0) == "request_plan"


def test_a_wrong_person_who_also_says_stop_takes_the_wrong_number_path(
    collections: CompiledFlow,
) -> None:
    assert choose_intent(reply("stop", "wrong_number"), 0.0) == "wrong_number"
    conv, actions = step(collections, started(collections), reply("stop", "wrong_number"), T0)
    assert conv.state == "wrong_number" and "wrong_number" in conv.flags
    sent = [a.template for a in actions if isinstance(a, c.Send)]
    assert sent == ["wrong_number_apology"]
    assert [a.reason for a in actions if isinstance(a, c.Handoff)] == ["wrong_number"]


def test_low_confidence_is_unknown() -> None:
    unsure = c.Reply(intents=(c.ScoredIntent(name="promise_to_pay", score=0.3),))
    assert choose_intent(unsure, 0.5) == "unknown"
    assert choose_intent(unsure, 0.2) == "promise_to_pay"


def test_stale_timer_events_are_ignored(collections: CompiledFlow) -> None:
    conv = started(collections)
    early = step(collections, conv, c.TimerFired(name="timeout"), T0 + timedelta(hours=1))
    unknown = step(collections, conv, c.TimerFired(name="nothing"), T0 + timedelta(days=9))
    assert early == (conv, [])
    assert unknown == (conv, [])


def test_run_until_fires_timers_in_order_at_their_time(collections: CompiledFlow) -> None:
    conv, _ = step(
        collections, started(collections), reply("promise_to_pay", date=date(2026, 12, 3)), T0
    )
    fired = [
        (at, ev.name, after.state)
        for at, ev, after, _ in run_until(collections, conv, T0 + timedelta(days=3))
    ]
    assert fired == [
        (datetime(2026, 12, 3, 9, 30, tzinfo=SHANGHAI), "promise_day", "promised"),
        (datetime(2026, 12, 4, 10, 0, tzinfo=SHANGHAI), "timeout", "awaiting_reply"),
    ]


def test_timers_are_moved_into_the_send_window(collections: CompiledFlow) -> None:
    settings = collections.flow.spec.settings
    night = datetime(2026, 12, 2, 22, 30, tzinfo=SHANGHAI)
    dawn = datetime(2026, 12, 3, 6, 0, tzinfo=SHANGHAI)
    day = datetime(2026, 12, 3, 12, 0, tzinfo=SHANGHAI)
    assert into_window(night, settings, SHANGHAI) == datetime(2026, 12, 3, 8, 0, tzinfo=SHANGHAI)
    assert into_window(dawn, settings, SHANGHAI) == datetime(2026, 12, 3, 8, 0, tzinfo=SHANGHAI)
    assert into_window(day, settings, SHANGHAI) == day


def test_promise_records_the_last_day_of_a_range(collections: CompiledFlow) -> None:
    event = reply("promise_to_pay", date_range=(date(2026, 12, 2), date(2026, 12, 5)))
    conv, actions = step(collections, started(collections), event, T0)
    assert conv.promise is not None
    assert conv.promise.date == date(2026, 12, 5)
    assert c.RecordPromise(date=date(2026, 12, 5), amount=None) in actions
    assert "12月5日" in sends(actions)[0].text


def test_payments_add_up_and_close_when_paid(collections: CompiledFlow) -> None:
    conv, actions = step(collections, started(collections), c.Payment(amount=Decimal("1200")), T0)
    assert conv.outstanding == Decimal("2000.00")
    assert "2000.00" in sends(actions)[0].text
    conv, actions = step(collections, conv, c.Payment(amount=Decimal("2000")), T0)
    assert conv.state == "paid"
    assert c.Close(reason="paid") in actions
    assert conv.timers == {}


def test_guard_blocks_any_send_once_opted_out(collections: CompiledFlow) -> None:
    # A conversation marked opted out but sitting in a bot state (stale data, a bad migration):
    # the flags, not the flow, have the last word.
    conv = started(collections).model_copy(update={"flags": (Flag.OPTED_OUT,)})
    _, actions = step(collections, conv, reply("ask_info"), T0)
    assert sends(actions) == []
    assert c.Blocked(template="account_info", reason="opted_out") in actions


def test_guard_blocks_debt_content_to_a_wrong_number(collections: CompiledFlow) -> None:
    conv = started(collections).model_copy(update={"flags": (Flag.WRONG_NUMBER,)})
    _, actions = step(collections, conv, reply("abuse"), T0)
    assert [s.template for s in sends(actions)] == ["abuse_calm"]  # no debt content: allowed
    _, actions = step(collections, conv, reply("ask_info"), T0)
    assert c.Blocked(template="account_info", reason="wrong_number") in actions


def test_events_before_start_and_for_other_flows(collections: CompiledFlow) -> None:
    conv = new_conversation(collections, ACCOUNT, "x")
    with pytest.raises(EngineError, match="timezone"):
        step(collections, conv, c.Start(), T0.replace(tzinfo=None))
    with pytest.raises(EngineError, match="runs flow"):
        step(collections, conv.model_copy(update={"flow": "other"}), c.Start(), T0)


def test_reply_from_understanding_adapter() -> None:
    from intents.model import Entities, Explanation, Intent, IntentScore, Understanding

    u = Understanding(
        text="周五还500",
        intent=Intent.PROMISE_TO_PAY,
        intents=(IntentScore(name=Intent.PROMISE_TO_PAY, score=0.9),),
        entities=Entities(date=date(2026, 12, 4), amount=500.1),
        explain=Explanation(normalized="周五还500"),
    )
    r = c.reply_from_understanding(u)
    assert r.intents == (c.ScoredIntent(name="promise_to_pay", score=0.9),)
    assert r.entities.amount == Decimal("500.1")
    assert r.entities.present() == {"date", "amount"}


def test_minimal_flow_hands_off_any_reply(minimal: CompiledFlow) -> None:
    conv = started(minimal)
    conv, actions = step(minimal, conv, reply("ask_info"), T0)
    assert conv.state == "human"
    assert c.Handoff(reason="reply", priority="normal") in actions

"""The terminal simulator, driven by a script instead of a person."""

from __future__ import annotations

import io
from datetime import datetime

from dialogs_support import T0

from dialogs import conversation as c
from dialogs.engine import CompiledFlow
from dialogs.simulate import Simulator

KEYWORDS = {"明天还": "promise_to_pay", "退订": "stop"}


def fake_nlu(text: str, now: datetime, tz: str) -> c.Reply:
    entities = (
        c.ReplyEntities(date=now.date().replace(day=now.day + 1))
        if "明天" in text
        else c.ReplyEntities()
    )
    return c.Reply(
        text=text, intents=(c.ScoredIntent(name=KEYWORDS.get(text, "unknown")),), entities=entities
    )


def play(cf: CompiledFlow, script: str) -> str:
    out = io.StringIO()
    assert Simulator(cf, T0, understand=fake_nlu).run(io.StringIO(script), out) == 0
    return out.getvalue()


def test_a_scripted_session(collections: CompiledFlow) -> None:
    out = play(
        collections,
        "明天还\n/timers\n/wait 2d\n/state\n/pay 100\n退订\n/wait 3d\n/json\n/quit\n",
    )
    assert "bot [first_reminder, 2 SMS]: 【XX金融】张*您好" in out
    assert "(intent promise_to_pay)" in out
    assert "→ promised" in out
    assert "promise_day at 12-03 09:30" in out
    assert "timeout at 12-04 10:00" in out
    assert "(12-03 09:30) timer promise_day fired" in out
    assert "bot [promise_broken" in out
    assert "state awaiting_reply; flags []; counters {'broken_promises': 1}" in out
    assert "bot [payment_partial" in out
    assert "3100.00" in out
    assert "bot [stop_confirm, 1 SMS]" in out
    assert "→ opted_out" in out
    assert '"state": "opted_out"' in out
    tail = out[out.index("→ opted_out") :]
    assert "bot [" not in tail  # nothing after stop


def test_commands_and_mistakes(collections: CompiledFlow) -> None:
    out = play(
        collections,
        "/help\n/wait soon\n/pay lots\n/agent maybe\n/frobnicate\n"
        "/intent dispute\n/agent returned\n/fail\n/restart\n",
    )
    assert "/wait 2d" in out  # the help text
    assert "! 'soon' is not a duration" in out
    assert "! /pay needs an amount" in out
    assert "! 'maybe' is not a valid AgentAction" in out
    assert "! unknown command /frobnicate" in out
    assert "bot [dispute_ack" in out
    assert "→ with_agent" in out
    assert "handoff to a person: delivery_failed" in out
    assert out.count("bot [first_reminder") == 2


def test_end_of_input_ends_the_session(collections: CompiledFlow) -> None:
    assert "awaiting_reply>" in play(collections, "")

"""Stop, wrong number and dispute are honoured in every state of every shipped flow (issue 16):
closed ones included, where the conversation stays in its end state."""

from __future__ import annotations

import pytest
from dialogs_support import ACCOUNT, T0

from dialogs import conversation as c
from dialogs.engine import CompiledFlow, compile_flow, new_conversation, step
from dialogs.flow import load_flow
from dialogs.registry import DEFAULT_FLOWS
from dialogs.schema import Flag

FLOWS = [compile_flow(load_flow(p)) for p in sorted(DEFAULT_FLOWS.glob("*.yaml"))]
EVERY_STATE = [(cf, state) for cf in FLOWS for state in cf.flow.spec.states]


def _in(cf: CompiledFlow, state: str) -> c.Conversation:
    return new_conversation(cf, ACCOUNT, "every-state").model_copy(update={"state": state})


def _reply(intent: str) -> c.Reply:
    return c.Reply(text="", intents=(c.ScoredIntent(name=intent),))


def _label(item: object) -> str:
    return str(item) if isinstance(item, str) else ""


@pytest.mark.parametrize(("cf", "state"), EVERY_STATE, ids=lambda x: _label(x) or None)
@pytest.mark.parametrize(
    ("intent", "flag"), [("stop", Flag.OPTED_OUT), ("wrong_number", Flag.WRONG_NUMBER)]
)
def test_stop_and_wrong_number_set_their_flag_in_every_state(
    cf: CompiledFlow, state: str, intent: str, flag: Flag
) -> None:
    after, actions = step(cf, _in(cf, state), _reply(intent), T0)
    assert after.has(flag)  # the service suppresses the number when the flag is set
    assert cf.flow.spec.states[after.state].terminal
    if cf.flow.spec.states[state].terminal:
        assert after.state == state  # a closed case stays closed (paid stays paid)
    # the flow itself never relies on the engine's last-resort guard
    assert not [a for a in actions if isinstance(a, c.Blocked)]


@pytest.mark.parametrize(("cf", "state"), EVERY_STATE, ids=lambda x: _label(x) or None)
def test_a_second_stop_sends_nothing_in_every_state(cf: CompiledFlow, state: str) -> None:
    stopped, _ = step(cf, _in(cf, state), _reply("stop"), T0)
    again, actions = step(cf, stopped, _reply("stop"), T0)
    assert again.has(Flag.OPTED_OUT)
    assert not [a for a in actions if isinstance(a, c.Send | c.Blocked)]


@pytest.mark.parametrize(("cf", "state"), EVERY_STATE, ids=lambda x: _label(x) or None)
def test_a_dispute_is_recorded_and_handed_off_in_every_state(cf: CompiledFlow, state: str) -> None:
    after, actions = step(cf, _in(cf, state), _reply("dispute"), T0)
    assert after.has(Flag.DISPUTED) and after.has(Flag.PAUSED)
    assert [a.reason for a in actions if isinstance(a, c.Handoff)] == ["dispute"]
    assert not [a for a in actions if isinstance(a, c.Blocked)]


def test_shipped_templates_say_how_they_depend_on_the_day() -> None:
    from dialogs.templates import day_bound

    (cf,) = [f for f in FLOWS if f.name == "collections"]
    kinds = {name: day_bound(t.text) for name, t in cf.flow.templates.items()}
    assert kinds["promise_day_reminder"] == "that_day_only"  # 今天是您约定的还款日
    assert kinds["first_reminder"] == "rerender"  # 已逾期{days_overdue}天
    assert kinds["follow_up"] == "any_day"
    assert day_bound("【{signature}】请于明天前还款") == "that_day_only"
    assert day_bound("【{signature}】{days_overdue}天") == "rerender"

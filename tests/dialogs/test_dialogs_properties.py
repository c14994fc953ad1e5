"""Property: whatever borrowers, clocks, payments and agents do, stop and wrong number hold."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from dialogs_support import ACCOUNT, T0
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs import conversation as c
from dialogs.engine import compile_flow, new_conversation, run_until, step
from dialogs.flow import load_flow
from dialogs.lexicon import debt_word_hits
from dialogs.registry import DEFAULT_FLOWS
from dialogs.schema import AgentAction, Flag
from intents.model import INTENT_NAMES

FLOW = compile_flow(load_flow(DEFAULT_FLOWS / "collections.yaml"))

entities = st.builds(
    c.ReplyEntities,
    date=st.none() | st.dates(date(2026, 11, 25), date(2027, 1, 31)),
    amount=st.none() | st.decimals(1, 5000, places=2),
)
replies = st.builds(
    c.Reply,
    text=st.just(""),
    intents=st.lists(st.sampled_from(INTENT_NAMES), min_size=1, max_size=3, unique=True).map(
        lambda names: tuple(c.ScoredIntent(name=n) for n in names)
    ),
    entities=entities,
)
events = st.one_of(
    replies,
    replies,  # replies are what this property is about: draw them twice as often
    st.timedeltas(timedelta(minutes=30), timedelta(days=6)),
    st.builds(c.Payment, amount=st.decimals(1, 4000, places=2)),
    st.builds(c.Agent, action=st.sampled_from(list(AgentAction))),
    st.just(c.DeliveryFailed(reason="x")),
    st.just(c.Start()),
)


def assert_no_debt_content(send: c.Send) -> None:
    assert not send.debt_content, send
    assert not debt_word_hits(send.text), send.text
    for secret in (ACCOUNT.masked_name, str(ACCOUNT.amount_due), ACCOUNT.last4):
        assert secret not in send.text, send.text


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=30))
def test_nothing_after_stop_and_no_debt_content_after_wrong_number(
    script: list[c.AnyEvent | timedelta],
) -> None:
    conv = new_conversation(FLOW, ACCOUNT, "prop")
    now = T0
    for item in script:
        batches: list[tuple[c.Conversation, c.AnyEvent, c.Conversation, list[c.AnyAction]]] = []
        if isinstance(item, timedelta):
            before = conv
            for _, event, after, actions in run_until(FLOW, conv, now + item):
                batches.append((before, event, after, actions))
                before = after
            now += item
        else:
            after, actions = step(FLOW, conv, item, now)
            batches.append((conv, item, after, actions))
        for before, event, after, actions in batches:
            sends = [a for a in actions if isinstance(a, c.Send)]
            # the flow itself is safe: the engine's guard never has to step in
            assert not [a for a in actions if isinstance(a, c.Blocked)], actions
            if before.has(Flag.OPTED_OUT):
                assert sends == [], "a message was sent after stop"
            if before.has(Flag.WRONG_NUMBER) or after.has(Flag.WRONG_NUMBER):
                for send in sends:
                    assert_no_debt_content(send)
            names = [s.name for s in event.intents] if isinstance(event, c.Reply) else []
            if "stop" in names and not before.has(Flag.WRONG_NUMBER):
                assert len(sends) <= 1
                for send in sends:
                    assert_no_debt_content(send)
                if after.state == "opted_out":
                    assert after.timers == {}
            conv = after
    assert conv.paid_total >= Decimal(0)

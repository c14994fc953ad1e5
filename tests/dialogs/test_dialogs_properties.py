"""Property: whatever borrowers, clocks, payments and agents do, stop and wrong number hold."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from dialogs_support import ACCOUNT, T0
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs import conversation as c
from dialogs.conditions import holds, promise_kept
from dialogs.engine import (
    _Work,
    compile_flow,
    new_conversation,
    run_until,
    step,
)
from dialogs.flow import load_flow
from dialogs.registry import DEFAULT_FLOWS
from dialogs.schema import AgentAction, Condition, Flag
from intents.model import INTENT_NAMES
from policy.rulebook import default_policy

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
    st.builds(c.Agent, action=st.sampled_from([a for a in AgentAction if a != "promised"])),
    # A person's promise always names its day (dialogs.conversation.Agent).
    st.builds(
        c.Agent,
        action=st.just(AgentAction.PROMISED),
        promise_date=st.dates(date(2024, 5, 1), date(2024, 7, 1)),
        promise_amount=st.one_of(st.none(), st.decimals(1, 4000, places=2)),
    ),
    st.just(c.DeliveryFailed(reason="x")),
    st.just(c.Start()),
)


def assert_no_debt_content(send: c.Send) -> None:
    assert not send.debt_content, send
    assert not default_policy().checker(None).debt_content(send.text), send.text
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


# --- conditions read the working copy as they would read the finished conversation ---------

small_counts = st.dictionaries(st.sampled_from(["asks", "nudges"]), st.integers(0, 4), max_size=2)
flag_lists = st.lists(st.sampled_from(list(Flag)), max_size=3, unique=True)
# A condition written in a flow tests one or two things; with many, the first failing test
# would hide the rest from the property.
condition_tests: dict[str, st.SearchStrategy[object]] = {
    "entity": st.lists(st.sampled_from(["date", "amount"]), min_size=1, max_size=2, unique=True),
    "no_entity": st.lists(st.sampled_from(["date", "amount"]), min_size=1, max_size=1),
    "within_days": st.integers(0, 10),
    "amount_covers_due": st.booleans(),
    "paid_in_full": st.booleans(),
    "promise_kept": st.booleans(),
    "counter_below": small_counts,
    "counter_at_least": small_counts,
    "flags": flag_lists,
    "not_flags": flag_lists,
}
conditions = (
    st.lists(st.sampled_from(sorted(condition_tests)), max_size=2, unique=True)
    .flatmap(lambda names: st.fixed_dictionaries({n: condition_tests[n] for n in names}))
    .map(lambda tests: Condition.model_validate(tests))
)
# Around the account's 3200.00 due, where "paid in full" and "covers the due" turn.
money = st.sampled_from(["0", "1", "500.50", "2700", "3199.99", "3200.00", "4000"]).map(Decimal)
promises = st.none() | st.builds(
    c.Promise,
    date=st.none() | st.dates(date(2026, 12, 1), date(2026, 12, 20)),
    amount=st.none() | money,
    made_at=st.just(T0),
    paid_before=money,
)
# Changes a step may have made before a condition is checked (they wait in `pending`).
pending_changes = st.fixed_dictionaries(
    {},
    optional={
        "flags": flag_lists.map(tuple),
        "counters": small_counts,
        "promise": promises,
        "paid_total": money,
        "last_payment": st.none() | money,
    },
)


def reference_holds(cond: Condition, conv: c.Conversation, event: c.AnyEvent, today: date) -> bool:
    """The spec, test by test, on a finished conversation."""
    ents = event.entities if isinstance(event, c.Reply) else c.ReplyEntities()
    present = ents.present()
    tests = [
        all(e in present for e in cond.entity),
        not any(e in present for e in cond.no_entity),
        all(conv.has(f) for f in cond.flags),
        not any(conv.has(f) for f in cond.not_flags),
        all(conv.counters.get(k, 0) < n for k, n in cond.counter_below.items()),
        all(conv.counters.get(k, 0) >= n for k, n in cond.counter_at_least.items()),
    ]
    if cond.within_days is not None:
        day = ents.pay_date
        tests.append(day is not None and 0 <= (day - today).days <= cond.within_days)
    if cond.amount_covers_due is not None:
        covers = ents.amount is not None and ents.amount >= conv.outstanding
        tests.append(covers == cond.amount_covers_due)
    if cond.paid_in_full is not None:
        tests.append((conv.outstanding == 0) == cond.paid_in_full)
    if cond.promise_kept is not None:
        tests.append(promise_kept(conv) == cond.promise_kept)
    return all(tests)


@settings(max_examples=500, deadline=None)
@given(
    conditions,
    st.builds(
        c.Conversation,
        id=st.just("p"),
        flow=st.just(FLOW.name),
        flow_version=st.just(FLOW.version),
        state=st.just(FLOW.flow.spec.initial),
        account=st.just(ACCOUNT),
        flags=flag_lists.map(tuple),
        counters=small_counts,
        promise=promises,
        paid_total=money,
    ),
    pending_changes,
    st.one_of(replies, st.just(c.Start())),
)
def test_conditions_on_the_working_copy_match_the_finished_conversation(
    cond: Condition,
    conv: c.Conversation,
    pending: dict[str, object],
    event: c.AnyEvent,
) -> None:
    work = _Work(FLOW, conv, event, T0, conv.state, pending=dict(pending))
    today = T0.date()
    expected = reference_holds(cond, work.snapshot(), event, today)
    assert holds(cond, work, event, today) == expected
    assert holds(cond, work.snapshot(), event, today) == expected

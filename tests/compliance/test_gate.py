"""The gate's decisions, rule by rule (content details are in test_content.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.compliance.gate import Decision, Gate, GateContext, text_hash
from bot.compliance.preferences import extract, merge
from bot.compliance.status import status
from bot.records import Outbound, SendKind, SendRecord

SH = ZoneInfo("Asia/Shanghai")
REMINDER = "【XX金融】张*您好，您尾号1234的借款待还3200.00元，请通过XX消费金融官方App还款。如有疑问请致电95XXX。"
CONFIRM = "【XX金融】您已退订，我们将不再向本号码发送短信。"


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate.load()


def at(hh: int, mm: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 12, day, hh, mm, tzinfo=SH)


def msg(
    text: str = REMINDER, kind: SendKind = "proactive", debt: bool = True, approved: bool = True
) -> Outbound:
    return Outbound(
        account_id="A1",
        phone="+8613800000001",
        text=text,
        template="t",
        created_at=at(10),
        kind=kind,
        debt_content=debt,
        approved=approved,
    )


def ctx(gate: Gate, **kw: object) -> GateContext:
    base: dict[str, object] = {"pack": gate.pack("cn"), "zones": [SH]}
    base.update(kw)
    return GateContext(**base)  # type: ignore[arg-type]


def sent(when: datetime, kind: SendKind = "proactive", text: str = "x") -> SendRecord:
    return SendRecord(
        at=when, account_id="A1", message_id=when.isoformat(), kind=kind, text_hash=text_hash(text)
    )


def test_a_lawful_reminder_in_the_window_is_sent(gate: Gate) -> None:
    assert gate.decide(msg(), ctx(gate), at(10)) == Decision(verdict="send")


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (at(21, 30), at(8, 0, day=3)),  # evening: tomorrow morning
        (at(2, 0), at(8, 0)),  # the small hours: this morning
        (at(7, 59), at(8, 0)),
        (at(20, 30), at(8, 0, day=3)),  # would land inside the latency buffer before 21:00
    ],
)
def test_outside_the_window_is_deferred_to_the_next_opening(
    gate: Gate, now: datetime, until: datetime
) -> None:
    d = gate.decide(msg(), ctx(gate), now)
    assert d.verdict == "defer"
    assert d.until == until
    assert d.rules == ("CN-TIME-01",)


def test_threats_are_blocked_whatever_the_time(gate: Gate) -> None:
    d = gate.decide(msg(REMINDER + "再不还马上逮捕你。"), ctx(gate), at(10))
    assert d.verdict == "block"
    assert any(r.startswith("CN-") for r in d.rules)


def test_soft_risk_words_only_in_approved_wording(gate: Gate) -> None:
    text = "【XX金融】张*您好，您尾号1234的借款已逾期，逾期信息将依法上报征信。请通过官方App还款或致电95XXX。"
    assert gate.decide(msg(text, approved=True), ctx(gate), at(10)).verdict == "send"
    assert gate.decide(msg(text, approved=False), ctx(gate), at(10)).verdict == "block"


def test_after_opt_out_only_one_confirmation(gate: Gate) -> None:
    opted = ctx(gate, opted_out=True)
    d = gate.decide(msg(), opted, at(10))
    assert (d.verdict, d.rules) == ("block", ("CN-OPTOUT-01",))
    assert (
        gate.decide(msg(CONFIRM, kind="confirmation", debt=False), opted, at(10)).verdict == "send"
    )
    again = ctx(gate, opted_out=True, history=[sent(at(10), "confirmation", CONFIRM)])
    d = gate.decide(msg(CONFIRM, kind="confirmation", debt=False), again, at(10, 5))
    assert (d.verdict, d.rules) == ("block", ("CN-OPTOUT-02",))


def test_nothing_with_debt_content_to_a_wrong_number(gate: Gate) -> None:
    wrong = ctx(gate, flags=frozenset({"wrong_number"}))
    d = gate.decide(msg(kind="reply"), wrong, at(10))
    assert (d.verdict, d.rules) == ("block", ("CN-3P-01",))
    # Even when the flow forgot to mark the template: the rendered text is checked.
    d = gate.decide(msg(kind="reply", debt=False), wrong, at(10))
    assert d.verdict == "block"
    apology = "【XX金融】抱歉打扰，我们将不再向本号码发送此类信息。"
    assert gate.decide(msg(apology, kind="reply", debt=False), wrong, at(10)).verdict == "send"


@pytest.mark.parametrize("flag", ["paused", "disputed", "ceased"])
def test_holds_stop_proactive_collection_but_not_the_acknowledgement(gate: Gate, flag: str) -> None:
    held = ctx(gate, flags=frozenset({flag}))
    d = gate.decide(msg(), held, at(10))
    assert (d.verdict, d.rules) == ("block", ("CN-HOLD-01",))
    assert gate.decide(msg(kind="reply"), held, at(10)).verdict == "send"
    assert gate.decide(msg(), ctx(gate, agent_owned=True), at(10)).verdict == "block"


def test_daily_and_weekly_caps_defer(gate: Gate) -> None:
    today = ctx(gate, history=[sent(at(9))])
    d = gate.decide(msg(), today, at(10))
    assert (d.verdict, d.until) == ("defer", at(8, 0, day=3))
    assert d.rules[0] == "CN-FREQ-01"  # then the window: tomorrow's first allowed minute
    week = ctx(gate, history=[sent(at(10) - timedelta(days=n)) for n in (4, 3, 2)])
    d = gate.decide(msg(), week, at(10))
    assert d.verdict == "defer" and "CN-FREQ-02" in d.rules
    assert d.until == at(10) - timedelta(days=4) + timedelta(days=7)
    replies = ctx(gate, history=[sent(at(9, i), "reply") for i in range(10)])
    assert gate.decide(msg(kind="reply"), replies, at(10)).rules == ("CN-FREQ-03",)


@pytest.mark.parametrize(
    ("history", "now"),
    [
        ([], at(10)),  # nothing used: now
        ([], at(21, 30)),  # the window: tomorrow 08:00
        ([at(9)], at(10)),  # the day's cap used: not "now" but tomorrow's first minute
        ([at(10) - timedelta(days=n) for n in (4, 3, 2)], at(10)),  # the 7-day cap
        ([at(9) - timedelta(days=n) for n in (6, 3, 2)], at(22)),  # cap lifts in the night
    ],
)
def test_the_status_next_send_is_when_the_gate_would_send(
    gate: Gate, history: list[datetime], now: datetime
) -> None:
    """`smsbot compliance explain` and the desk's snapshot say when a reminder could go: the
    time the gate itself would release one (an operator saw "now" while the cap was used)."""
    c = ctx(gate, history=[sent(t) for t in history])
    d = gate.decide(msg(), c, now)
    expected = now if d.verdict == "send" else d.until
    assert datetime.fromisoformat(status(c, now)["next_allowed_send"]) == expected
    if d.verdict == "defer":  # and at that time the gate does send
        assert gate.decide(msg(), c, expected).verdict == "send"


@pytest.mark.parametrize(
    "facts",
    [{"opted_out": True}, {"flags": frozenset({"wrong_number"})}, {"flags": frozenset({"disputed"})},
     {"agent_owned": True}],
)  # fmt: skip
def test_the_status_has_no_next_send_while_nothing_proactive_may_go(
    gate: Gate, facts: dict[str, object]
) -> None:
    c = ctx(gate, **facts)
    assert gate.decide(msg(), c, at(10)).verdict == "block"
    assert status(c, at(10))["next_allowed_send"] is None


def test_identical_text_waits_for_the_gap(gate: Gate) -> None:
    history = ctx(gate, history=[sent(at(9) - timedelta(days=1), "reply", REMINDER)])
    d = gate.decide(msg(kind="proactive"), history, at(8, 30))
    assert d.verdict == "defer" and "CN-FREQ-04" in d.rules
    assert d.until == at(9)
    assert gate.decide(msg(kind="proactive"), history, at(9)).verdict == "send"


def test_an_identical_answer_within_the_gap_is_dropped_not_held(gate: Gate) -> None:
    """From a borrower-journey trial: an answer the borrower already has word for word
    (asked twice in a row), held for the gap, arrived unasked the next day. It is dropped."""
    history = ctx(gate, history=[sent(at(9) - timedelta(days=1), "reply", REMINDER)])
    d = gate.decide(msg(kind="reply"), history, at(8, 30))
    assert (d.verdict, d.rules) == ("block", ("CN-FREQ-04",))
    assert gate.decide(msg(kind="reply"), history, at(9)).verdict == "send"  # after the gap


def test_a_message_is_not_held_back_by_its_own_charge(gate: Gate) -> None:
    """A message back at the gate whose earlier charge a crash left in the ledger: that
    charge is not another send (it would trip the daily cap and the same-text gap)."""
    m = msg()
    own = sent(at(9, 55), text=REMINDER).model_copy(update={"message_id": m.id})
    assert gate.decide(m, ctx(gate, history=[own]), at(10)).verdict == "send"
    other = own.model_copy(update={"message_id": "another"})
    d = gate.decide(m, ctx(gate, history=[other]), at(10))
    assert d.verdict == "defer" and {"CN-FREQ-01", "CN-FREQ-04"} <= set(d.rules)


def test_borrower_quiet_times_are_honoured(gate: Gate) -> None:
    prefs = merge(None, extract("晚上别发短信"))
    d = gate.decide(msg(kind="reply"), ctx(gate, preferences=prefs), at(19))
    assert d.verdict == "defer"
    assert d.rules == ("CN-PREF-01",)
    assert d.until is not None and d.until.astimezone(SH).hour == 8


def test_confirmations_are_not_counted_against_caps(gate: Gate) -> None:
    busy = ctx(gate, opted_out=True, history=[sent(at(9, i), "reply") for i in range(10)])
    assert (
        gate.decide(msg(CONFIRM, kind="confirmation", debt=False), busy, at(10)).verdict == "send"
    )


def test_us_pack_window_follows_the_borrower_across_dst(gate: Gate) -> None:
    ny = ZoneInfo("America/New_York")
    us_msg = msg(
        "ACME Recovery, a debt collector: acct ending 1234 is past due. Pay at acme.example or "
        "800-555-0100. Reply STOP to stop texts to this number.",
    )
    us = GateContext(pack=gate.pack("us"), zones=[ny])
    # 2026-03-08 is the spring-forward day: 07:30 local is still too early.
    d = gate.decide(us_msg, us, datetime(2026, 3, 8, 7, 30, tzinfo=ny))
    assert d.verdict == "defer"
    assert d.until == datetime(2026, 3, 8, 8, 0, tzinfo=ny)
    assert gate.decide(us_msg, us, datetime(2026, 3, 8, 12, 0, tzinfo=ny)).verdict == "send"


def test_us_resubscription_only_without_a_dispute_or_cease_hold(gate: Gate) -> None:
    us = gate.pack("us")
    opted = GateContext(pack=us, zones=[ZoneInfo("America/New_York")], opted_out=True)
    assert gate.resubscribes(opted, "START").verdict == "send"  # type: ignore[union-attr]
    assert gate.resubscribes(opted, " unstop ").verdict == "send"  # type: ignore[union-attr]
    disputed = GateContext(
        pack=us, zones=opted.zones, opted_out=True, flags=frozenset({"disputed"})
    )
    d = gate.resubscribes(disputed, "START")
    assert d is not None and d.verdict == "block" and d.rules == ("US-OPTOUT-03",)
    assert gate.resubscribes(opted, "hello") is None
    cn = GateContext(pack=gate.pack("cn"), zones=[SH], opted_out=True)
    assert gate.resubscribes(cn, "START") is None  # the CN pack has no re-subscription

"""What a conversation-test step may expect (``expect:``), and the check of it.

Each expectation compares what one step did (its actions, the intent read, the gate's
verdicts) and the conversation afterwards with what the test says, as ``- want / + got``
lines; see dialogs/README.md for the format.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field

from dialogs import conversation as c
from dialogs.held import Moves, Queue
from dialogs.schema import Flag, Frozen


@dataclass
class QueueView:
    """What the gate's deferral queue looks like after a step (dialogs.held)."""

    held: list[str] = field(default_factory=list)  # templates still held, in order
    until: dict[str, str] = field(default_factory=dict)  # template -> local "MM-DD HH:MM"
    released: list[str] = field(default_factory=list)  # left during the step after waiting
    dropped: list[str] = field(default_factory=list)  # superseded or blocked during the step

    @classmethod
    def of(cls, queue: Queue, moves: Moves, zone: ZoneInfo) -> QueueView:
        return cls(
            held=[h.send.template for h in queue.held],
            until={h.send.template: f"{h.until.astimezone(zone):%m-%d %H:%M}" for h in queue.held},
            released=list(moves.released),
            dropped=list(moves.dropped),
        )


class PromiseExpect(Frozen):
    date: dt.date | None = None
    amount: Decimal | None = None


class Expect(Frozen):
    state: str | None = None
    intent: str | None = None
    sent: list[str] | None = None  # templates, in order; [] means nothing sent
    text: list[str] = Field(default_factory=list)  # fragments the sent texts contain
    not_text: list[str] = Field(default_factory=list)
    no_message: bool = False
    handoff: str | bool | None = None  # a reason, or true/false
    flags: list[Flag] = Field(default_factory=list)
    not_flags: list[Flag] = Field(default_factory=list)
    timers: list[str] | None = None  # the timers pending afterwards
    closed: str | None = None
    # The compliance gate's verdict per sent template: send, defer or block.
    gate: list[str] | None = None
    not_intent: str | list[str] | None = None  # the reply was read as none of these
    max_sent: int | None = Field(default=None, ge=0)  # at most this many messages
    # The stored promise afterwards: its date and amount (null: none given), or false (no
    # promise stored) / true (some promise).
    promise: PromiseExpect | bool | None = None
    counters: dict[str, int] = Field(default_factory=dict)  # exact values; unset counts 0
    timers_at: dict[str, AwareDatetime] = Field(default_factory=dict)  # exact due times
    # The gate's deferral queue (needs the gate, as `smsbot flows test` runs it): templates
    # still held after the step, until when (local "MM-DD HH:MM"), and those that left or
    # were dropped (superseded, blocked) during the step.
    held: list[str] | None = None
    held_until: dict[str, str] = Field(default_factory=dict)
    released: list[str] | None = None
    dropped: list[str] | None = None


def _sends(actions: Sequence[c.AnyAction]) -> list[c.Send]:
    return [a for a in actions if isinstance(a, c.Send)]


def _listed(v: str | list[str]) -> list[str]:
    return [v] if isinstance(v, str) else v


def _check_promise(
    want: PromiseExpect | bool,
    got: c.Promise | None,
    diff: Callable[[str, object, object], None],
) -> None:
    if isinstance(want, bool):
        if want != (got is not None):
            diff("promise", "stored" if want else "none", got or "none")
        return
    wanted = f"date {want.date}, amount {want.amount}"
    if got is None:
        diff("promise", wanted, "none")
    elif (got.date, got.amount) != (want.date, want.amount):
        diff("promise", wanted, f"date {got.date}, amount {got.amount}")


def check(
    exp: Expect,
    actions: Sequence[c.AnyAction],
    intent: str | None,
    gate: Sequence[str],
    conv: c.Conversation,
    queue: QueueView | None = None,
) -> list[str]:
    """Differences between what a step expected and what happened, as `- want / + got` pairs."""
    out: list[str] = []
    sends = _sends(actions)
    sent = [s.template for s in sends]
    texts = "\n".join(s.text for s in sends)
    handoffs = [a.reason for a in actions if isinstance(a, c.Handoff)]
    closes = [a.reason for a in actions if isinstance(a, c.Close)]

    def show(v: object) -> str:
        return "[" + ", ".join(map(str, v)) + "]" if isinstance(v, list) else str(v)

    def diff(what: str, want: object, got: object) -> None:
        out.append(f"- {what}: {show(want)}\n+ {what}: {show(got)}")

    if exp.state is not None and exp.state != conv.state:
        diff("state", exp.state, conv.state)
    if exp.intent is not None and exp.intent != intent:
        diff("intent", exp.intent, intent)
    if exp.sent is not None and exp.sent != sent:
        diff("sent", exp.sent, sent)
    if exp.no_message and sends:
        diff("sent", "nothing", sent)
    for frag in exp.text:
        if frag not in texts:
            diff("text containing", repr(frag), repr(texts) if texts else "no message")
    for frag in exp.not_text:
        if frag in texts:
            diff("text without", repr(frag), repr(texts))
    if exp.handoff is True and not handoffs:
        diff("handoff", "yes", "none")
    elif exp.handoff is False and handoffs:
        diff("handoff", "none", handoffs)
    elif isinstance(exp.handoff, str) and exp.handoff not in handoffs:
        diff("handoff", exp.handoff, handoffs or "none")
    for f in exp.flags:
        if not conv.has(f):
            diff("flags including", f.value, [x.value for x in conv.flags])
    for f in exp.not_flags:
        if conv.has(f):
            diff("flags without", f.value, [x.value for x in conv.flags])
    if exp.timers is not None and sorted(exp.timers) != sorted(conv.timers):
        diff("timers", sorted(exp.timers), sorted(conv.timers))
    if exp.closed is not None and exp.closed not in closes:
        diff("closed", exp.closed, closes or "not closed")
    if exp.not_intent is not None and intent in _listed(exp.not_intent):
        diff("intent other than", exp.not_intent, intent)
    if exp.max_sent is not None and len(sends) > exp.max_sent:
        diff(f"at most {exp.max_sent} message(s)", exp.max_sent, sent)
    if exp.promise is not None:
        _check_promise(exp.promise, conv.promise, diff)
    for name, n in exp.counters.items():
        if conv.counters.get(name, 0) != n:
            diff(f"counter {name}", n, conv.counters.get(name, 0))
    for name, at in exp.timers_at.items():
        got = conv.timers.get(name)
        if got != at:
            diff(f"timer {name} due", at.isoformat(), got.isoformat() if got else "not set")
    q = queue or QueueView()
    for what, want, templates in (
        ("held", exp.held, q.held),
        ("released", exp.released, q.released),
        ("dropped", exp.dropped, q.dropped),
    ):
        if want is not None and want != templates:
            diff(what, want, templates)
    for template, when in exp.held_until.items():
        if q.until.get(template) != when:
            diff(f"{template} held until", when, q.until.get(template, "not held"))
    verdicts = [g.split()[0] for g in gate]
    if exp.gate is not None and exp.gate != verdicts:
        diff("gate", exp.gate, gate or "no gate")
    return out

"""The compliance gate's deferral queue, as conversation tests play it.

In the service a message the gate defers waits until its time, is then judged again, and
either leaves, waits longer, or is dropped as superseded (the conversation moved on, or its
words held on the day it was written only); timers set with it count from when it left
(``bot.outbound.dispatch``, ``bot.interpret``). ``advance`` plays the same on the simulated
clock, so a conversation test can say what the gate held, until when, and what became of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from dialogs import conversation as c
from dialogs.engine import CompiledFlow, into_window, rerender, step
from dialogs.schema import Settings
from dialogs.templates import RenderError, day_bound

# A message that left within this long of being written was not held: its timers stand.
_HELD = timedelta(minutes=1)


@dataclass(frozen=True)
class Leaving:
    """A held message as it may leave later: as written, dropped (why), or rendered again."""

    dropped: str | None = None
    rendered: tuple[str, dict[str, str], int] | None = None  # text, parameters, segments


def as_it_leaves(
    cf: CompiledFlow, conv: c.Conversation, template: str, written: datetime, at: datetime
) -> Leaving:
    """A held message leaves with the values of the moment it leaves: today's days overdue,
    and the ledger's amount, due date and name as the conversation quotes them now (an import
    or ``POST /api/accounts`` may have changed them meanwhile: a reminder must not quote a
    superseded amount). On a later day than written (the flow's zone), one whose own words
    name a day (今天是您约定的还款日) is dropped instead, and so is one about a day to come
    (``until: promised_date``) once that day is past. A message that is not one of the
    flow's templates (a person's) leaves as written. The service (bot.outbound.dispatch) and
    conversation tests ask this same question."""
    tpl = cf.flow.templates.get(template)
    if tpl is None:
        return Leaving()
    zone = ZoneInfo(cf.flow.spec.settings.timezone)
    day, today = written.astimezone(zone).date(), at.astimezone(zone).date()
    if today != day and day_bound(tpl.text) == "that_day_only":
        return Leaving(dropped=f"its words held on {day.isoformat()} only")
    until = conv.promise.date if tpl.until == "promised_date" and conv.promise else None
    if until is not None and until < today:
        return Leaving(dropped=f"the day it speaks of, {until.isoformat()}, is past")
    try:
        return Leaving(rendered=rerender(cf, conv, template, at))
    except RenderError:  # a value it was written with is gone: as written, as before
        return Leaving()


def counted_from_delivery(
    at: datetime,
    written: datetime,
    left: datetime,
    after: timedelta | None,
    settings: Settings,
) -> datetime | None:
    """When an ``after:`` timer due ``at``, set with a message written at ``written`` that left
    (or is held until) ``left``, really comes due: its delay counted from ``left``, into the
    send window as when it was set; None when that changes nothing (the message was not held,
    or the window had already moved the timer as far). ``after`` None: a message stored before
    the delays were kept, shifted by the hold as then. The service (bot.interpret) and
    conversation tests count it the same way.

    Not the timer shifted by the hold: one set at night was already moved to the morning's
    window, and shifting that by a night's hold pushed it to the afternoon (a first reminder
    written at 01:14 and held until 08:15: its 2-day follow-up due at 15:00, not 08:15)."""
    if left - written < _HELD:
        return None
    if after is None:
        later = at + (left - written)
    else:
        later = into_window(left + after, settings, ZoneInfo(settings.timezone))
    return later if later > at else None


class Verdict(Protocol):
    """One of the gate's decisions (bot.compliance.gate.Decision fits)."""

    @property
    def verdict(self) -> str: ...

    @property
    def until(self) -> datetime | None: ...

    @property
    def rules(self) -> tuple[str, ...]: ...


class Judge(Protocol):
    def decide(
        self,
        cf: CompiledFlow,
        conv: c.Conversation,
        sends: list[c.Send],
        answers: str | None,
        now: datetime,
    ) -> Sequence[Verdict]: ...


@dataclass
class Held:
    send: c.Send
    until: datetime
    written: datetime
    fingerprint: str
    answers: str | None
    paces: dict[str, tuple[datetime, timedelta]]  # after: timers set with it: (due, delay)


@dataclass
class Queue:
    """The messages the gate holds, and what left after being held (for the timers)."""

    held: list[Held] = field(default_factory=list)
    left: list[tuple[Held, datetime]] = field(default_factory=list)


@dataclass
class Moves:
    """What one step did to the queue."""

    notes: list[str] = field(default_factory=list)  # the gate's verdict lines, in order
    released: list[str] = field(default_factory=list)  # templates that left after waiting
    dropped: list[str] = field(default_factory=list)  # templates superseded or blocked
    actions: list[c.AnyAction] = field(default_factory=list)  # the flow's, timers included


def describe(d: Verdict, zone: ZoneInfo) -> str:
    rules = ", ".join(d.rules)
    if d.verdict == "defer" and d.until is not None:
        return f"defer until {d.until.astimezone(zone):%m-%d %H:%M} ({rules})"
    if d.verdict == "block":
        return f"block ({rules})"
    return "send"


def judge(
    gate: Judge,
    cf: CompiledFlow,
    conv: c.Conversation,
    actions: Sequence[c.AnyAction],
    answers: str | None,
    now: datetime,
    queue: Queue,
    moves: Moves,
) -> None:
    """The gate's verdict on the messages one step wrote; the deferred ones join the queue."""
    sends = [a for a in actions if isinstance(a, c.Send)]
    if not sends:
        return
    paces = {
        a.timer: (a.at, a.after)
        for a in actions
        if isinstance(a, c.Schedule) and a.after is not None
    }
    zone = ZoneInfo(cf.flow.spec.settings.timezone)
    for send, d in zip(sends, gate.decide(cf, conv, sends, answers, now), strict=True):
        moves.notes.append(describe(d, zone))
        if d.verdict == "defer" and d.until is not None:
            held = Held(send, d.until, now, c.fingerprint(conv), answers, paces)
            queue.held.append(held)


def advance(
    gate: Judge,
    cf: CompiledFlow,
    conv: c.Conversation,
    now: datetime,
    until: datetime,
    queue: Queue,
) -> tuple[c.Conversation, Moves]:
    """Time passes to ``until``: held messages come due and timers fire, each at its time."""
    moves = Moves()
    zone = ZoneInfo(cf.flow.spec.settings.timezone)
    for _ in range(10_000):  # a flow that reschedules itself at zero delay must not hang us
        timers = sorted((at, name) for name, at in conv.timers.items() if at <= until)
        release = min((h.until for h in queue.held if h.until <= until), default=None)
        if release is not None and (not timers or release <= timers[0][0]):
            for h in [h for h in queue.held if h.until == release]:
                queue.held.remove(h)
                _release(gate, cf, conv, h, release, zone, queue, moves)
            continue
        if not timers:
            return conv, moves
        at, name = timers[0]
        later = _follows_delivery(name, at, queue, cf.flow.spec.settings)
        if later is not None:
            conv = conv.model_copy(update={"timers": {**conv.timers, name: later}})
            continue
        conv, acts = step(cf, conv, c.TimerFired(name=name), at)
        moves.actions += acts
        judge(gate, cf, conv, acts, None, at, queue, moves)
    raise ValueError("timers keep firing; does a timeout reschedule itself with no delay?")


def _release(
    gate: Judge,
    cf: CompiledFlow,
    conv: c.Conversation,
    h: Held,
    at: datetime,
    zone: ZoneInfo,
    queue: Queue,
    moves: Moves,
) -> None:
    name = h.send.template
    if c.fingerprint(conv) != h.fingerprint:
        moves.dropped.append(name)
        moves.notes.append("superseded (the conversation moved on)")
        return
    send = h.send
    leaving = as_it_leaves(cf, conv, name, h.written, at)
    if leaving.dropped is not None:
        moves.dropped.append(name)
        moves.notes.append(f"superseded ({leaving.dropped})")
        return
    if leaving.rendered is not None:
        text, params, segments = leaving.rendered
        send = send.model_copy(update={"text": text, "params": params, "segments": segments})
    (d,) = gate.decide(cf, conv, [send], h.answers, at)
    moves.notes.append(describe(d, zone))
    if d.verdict == "send":
        moves.released.append(name)
        moves.actions.append(send)
        queue.left.append((h, at))
    elif d.verdict == "defer" and d.until is not None:
        queue.held.append(Held(send, d.until, h.written, h.fingerprint, h.answers, h.paces))
    else:
        moves.dropped.append(name)


def _follows_delivery(name: str, at: datetime, queue: Queue, settings: Settings) -> datetime | None:
    """When a timer set with a held message really comes due (None: now), as the service
    counts it: from when the message left, or is due to leave."""
    for h, left in [*((h, h.until) for h in queue.held), *queue.left]:
        paced = h.paces.get(name)
        if paced is not None and paced[0] == at:
            return counted_from_delivery(at, h.written, left, paced[1], settings)
    return None

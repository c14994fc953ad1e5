"""The dialog engine: ``step(flow, conversation, event, now) -> (conversation', actions)``.

Deterministic and free of I/O: the clock is an argument, templates are rendered from the
conversation, and the caller (web service, simulator, tests) performs the returned actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

from common.errors import SmsbotError
from dialogs import conversation as c
from dialogs.conditions import holds
from dialogs.dispatch import RuleRef
from dialogs.flow import Flow
from dialogs.machine import FlowMachine
from dialogs.plans import next_instalment
from dialogs.schema import ActionSpec, Delay, Flag, Settings
from dialogs.templates import sms_length
from dialogs.values import rendered, template_values

if TYPE_CHECKING:
    from dialogs.registry import Registry

# Safety intents win over whatever the NLU ranked first: a reply that says "stop" or "wrong
# person" anywhere must never be answered with debt content. A wrong person who also asks us to
# stop (打错了别发了, 你们发错人了) takes the wrong-number path: it suppresses the number just as a
# stop does, apologises instead of confirming an opt-out nobody subscribed to, and hands the
# account to a person to trace the borrower — which the stop path would skip.
OVERRIDING_INTENTS = ("wrong_number", "stop")
TIMEOUT = "timeout"  # the timer behind a state's `timeout:`
_NO_ENTITIES = c.ReplyEntities()  # what an event that is not a reply says (frozen: shared)


class EngineError(SmsbotError):
    """The engine was asked something a validated flow cannot answer (a bug or stale data)."""


@dataclass(frozen=True)
class CompiledFlow:
    """A validated flow and its machine, built once per version."""

    flow: Flow
    machine: FlowMachine

    @property
    def name(self) -> str:
        return self.flow.name

    @property
    def version(self) -> str:
        return self.flow.version


def compile_flow(flow: Flow) -> CompiledFlow:
    return CompiledFlow(flow, FlowMachine(flow.spec))


def new_conversation(cf: CompiledFlow, account: c.Account, conversation_id: str) -> c.Conversation:
    return c.Conversation(
        id=conversation_id,
        flow=cf.name,
        flow_version=cf.version,
        state=cf.flow.spec.initial,
        account=account,
    )


# --- the working copy transitions fires on ---------------------------------------------------


@dataclass
class _Work:
    """Mutable copy of a conversation for the length of one step.

    Field changes wait in ``pending`` and are read from there; conditions and templates read
    this object itself (a :class:`ConversationView`), so a step makes one pydantic copy, at
    the end (it made six, each a few microseconds).
    """

    cf: CompiledFlow
    conv: c.Conversation  # as of the last materialisation; ``pending`` goes on top
    event: c.AnyEvent
    now: datetime
    state: str
    pending: dict[str, object] = field(default_factory=dict)
    actions: list[c.AnyAction] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = self.cf.flow.spec.settings
        self.tz = ZoneInfo(self.settings.timezone)
        self.opted_out_before = self.conv.has(Flag.OPTED_OUT)

    def snapshot(self) -> c.Conversation:
        return self.conv.model_copy(update={**self.pending, "state": self.state})

    def _update(self, **changes: object) -> None:
        self.pending.update(changes)

    def _field(self, name: str) -> object:
        return self.pending[name] if name in self.pending else getattr(self.conv, name)

    @property
    def timers(self) -> dict[str, datetime]:
        return cast(dict[str, datetime], self._field("timers"))

    @property
    def counters(self) -> dict[str, int]:
        return cast(dict[str, int], self._field("counters"))

    @property
    def flags(self) -> tuple[Flag, ...]:
        return cast(tuple[Flag, ...], self._field("flags"))

    @property
    def promise(self) -> c.Promise | None:
        return cast(c.Promise | None, self._field("promise"))

    @property
    def plan(self) -> tuple[c.Instalment, ...]:
        return cast(tuple[c.Instalment, ...], self._field("plan"))

    @property
    def account(self) -> c.Account:
        return self.conv.account  # a step never changes the account

    @property
    def paid_total(self) -> Decimal:
        return cast(Decimal, self._field("paid_total"))

    @property
    def last_payment(self) -> Decimal | None:
        return cast(Decimal | None, self._field("last_payment"))

    @property
    def outstanding(self) -> Decimal:
        return c.outstanding(self.account.amount_due, self.paid_total)

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    # -- Interpreter protocol (called by the machine) --

    def check(self, ref: RuleRef) -> bool:
        return ref.rule.if_ is None or holds(ref.rule.if_, self, self.event, self.today)

    def run_rule(self, ref: RuleRef) -> None:
        for spec in ref.rule.do:
            self.apply(spec)

    def enter(self, state: str) -> None:
        st = self.cf.flow.spec.states[state]
        self._cancel(TIMEOUT)
        if st.terminal:
            # Nothing may happen after the end; leftover reminders would message a closed case.
            for name in list(self.timers):
                self._cancel(name)
        if st.timeout is not None:
            self._schedule(TIMEOUT, st.timeout)
        for spec in st.entry:
            self.apply(spec)

    # -- actions --

    def apply(self, spec: ActionSpec) -> None:
        if spec.send is not None:
            self._send(spec.send)
        elif spec.schedule is not None:
            self._schedule(spec.schedule.timer, spec.schedule)
        elif spec.cancel is not None:
            for name in list(self.timers) if spec.cancel == "all" else [spec.cancel]:
                self._cancel(name)
        elif spec.handoff is not None:
            self.actions.append(
                c.Handoff(reason=spec.handoff.reason, priority=spec.handoff.priority)
            )
        elif spec.record_promise:
            self._record_promise()
        elif spec.next_instalment:
            self._next_instalment()
        elif spec.set_flag is not None:
            self._flag(spec.set_flag, True)
        elif spec.clear_flag is not None:
            self._flag(spec.clear_flag, False)
        elif spec.increment is not None:
            counters = dict(self.counters)
            counters[spec.increment] = counters.get(spec.increment, 0) + 1
            self._update(counters=counters)
        elif spec.reset is not None:
            self._update(counters={k: v for k, v in self.counters.items() if k != spec.reset})
        elif spec.notify_agent is not None:
            self.actions.append(c.NotifyAgent(message=spec.notify_agent))
        elif spec.close is not None:
            self.actions.append(c.Close(reason=spec.close))

    def _send(self, name: str) -> None:
        tpl = self.cf.flow.templates[name]
        # Defence in depth behind the validator: flags, not flow files, have the last word.
        if self.opted_out_before:
            self.actions.append(c.Blocked(template=name, reason="opted_out"))
            return
        for flag in (Flag.OPTED_OUT, Flag.WRONG_NUMBER):
            if tpl.debt_content and flag in self.flags:
                self.actions.append(c.Blocked(template=name, reason=flag.value))
                return
        # Values depend on the account, payments and promise, never on the state.
        values = template_values(self.settings, self, self.today)
        text, params = rendered(tpl.text, values)
        length = sms_length(text)
        self.actions.append(
            c.Send(
                template=name,
                text=text,
                codes=dict(tpl.codes),
                params=params,
                length=length.units,
                segments=length.segments,
                debt_content=tpl.debt_content,
            )
        )

    def _schedule(self, name: str, delay: Delay) -> None:
        at = self.due(delay)
        if name != TIMEOUT and delay.on_date is not None and at <= self.now:
            # A reminder for a day whose hour has passed (今天还, said after 09:30): the
            # confirmation just said it; a late one would only repeat it, or arrive on the
            # wrong day once a cap holds it. The state's own timeout always stands.
            return
        self._update(timers={**self.timers, name: at})
        self.actions.append(c.Schedule(timer=name, at=at, after=delay.after))

    def _cancel(self, name: str) -> None:
        timers = self.timers
        if name in timers:
            self._update(timers={k: v for k, v in timers.items() if k != name})
            self.actions.append(c.Cancel(timer=name))

    def _record_promise(self) -> None:
        ents = self.event.entities if isinstance(self.event, c.Reply) else _NO_ENTITIES
        date, amount = ents.pay_date, ents.amount
        if isinstance(self.event, c.Agent):
            # A person's promise (agent:promised always names the day).
            date, amount = self.event.promise_date, self.event.promise_amount
        held = self.promise
        if date is not None and amount is None and held is not None and held.date is None:
            # One promise said in two replies (我只能还2000 → which day? → 15号): the day
            # completes the sum on record (a borrower's trial lost the 2,000).
            amount = held.amount
        promise = c.Promise(
            date=date,
            amount=amount,
            made_at=self.now,
            paid_before=cast(Decimal, self._field("paid_total")),
        )
        self._update(promise=promise)
        self.actions.append(c.RecordPromise(date=promise.date, amount=promise.amount))

    def _next_instalment(self) -> None:
        moved = next_instalment(self, self.now)
        if moved is None:  # the validator requires `if: {plan_remaining: true}` on the rule
            raise EngineError("next_instalment, but the plan has no further instalment")
        self._update(plan=moved[0], promise=moved[1])
        self.actions.append(c.RecordPromise(date=moved[1].date, amount=moved[1].amount))

    def _flag(self, flag: Flag, value: bool) -> None:
        if (flag in self.flags) == value:
            return
        flags = set(self.flags) | {flag} if value else set(self.flags) - {flag}
        self._update(flags=tuple(f for f in Flag if f in flags))
        self.actions.append(c.SetFlag(flag=flag, value=value))

    def due(self, delay: Delay) -> datetime:
        """When a timer fires, moved into the send window (CN-TIME-01: no contact at night)."""
        if delay.after is not None:
            at = self.now + delay.after
        else:
            promise = self.promise
            if promise is None or promise.date is None:
                raise EngineError("timer on the promised date, but no date was promised")
            start = self.settings.send_window[0]
            day = promise.date + timedelta(days=delay.plus_days)
            at = datetime.combine(day, delay.at or start, self.tz)
        return into_window(at, self.settings, self.tz)


def rerender(
    cf: CompiledFlow, conv: c.Conversation, template: str, now: datetime
) -> tuple[str, dict[str, str], int]:
    """``template`` written again for ``now`` (text, provider parameters, segments): a deferred
    message whose values change with the day (days overdue) leaves with today's."""
    settings = cf.flow.spec.settings
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    values = template_values(settings, conv, today)
    text, params = rendered(cf.flow.templates[template].text, values)
    return text, params, sms_length(text).segments


def into_window(at: datetime, settings: Settings, tz: ZoneInfo) -> datetime:
    local = at.astimezone(tz)
    start, end = settings.send_window
    if local.time() < start:
        return datetime.combine(local.date(), start, tz)
    if local.time() >= end:
        return datetime.combine(local.date() + timedelta(days=1), start, tz)
    return at


# --- the step --------------------------------------------------------------------------------


def choose_intent(reply: c.Reply, min_confidence: float) -> str:
    names = [s.name for s in reply.intents]
    for name in OVERRIDING_INTENTS:
        if name in names:
            return name
    if reply.intents[0].score < min_confidence:
        return "unknown"
    return names[0]


def _migrate(cf: CompiledFlow, conv: c.Conversation) -> c.Conversation:
    if conv.flow_version == cf.version:
        return conv
    state = conv.state
    if state not in cf.flow.spec.states:
        if state not in cf.flow.spec.migrations:
            raise EngineError(
                f"conversation {conv.id} is in state {state!r}, which flow {cf.name} version "
                f"{cf.version} neither has nor migrates"
            )
        state = cf.flow.spec.migrations[state]
    return conv.model_copy(update={"state": state, "flow_version": cf.version})


def step(
    cf: CompiledFlow, conv: c.Conversation, event: c.AnyEvent, now: datetime
) -> tuple[c.Conversation, list[c.AnyAction]]:
    """Apply one event at time ``now``; return the new conversation and what to do."""
    if now.tzinfo is None:
        raise EngineError("`now` must carry a timezone")
    if conv.flow != cf.name:
        raise EngineError(f"conversation {conv.id} runs flow {conv.flow!r}, not {cf.name!r}")
    conv = _migrate(cf, conv)
    updates: dict[str, object] = {"updated_at": now}
    match event:
        case c.TimerFired(name=name):
            due = conv.timers.get(name)
            if due is None or due > now:
                return conv, []  # cancelled or rescheduled since the caller looked: stale
            updates["timers"] = {k: v for k, v in conv.timers.items() if k != name}
            trigger = TIMEOUT if name == TIMEOUT else f"timer:{name}"
        case c.Reply():
            intent = choose_intent(event, cf.flow.spec.settings.min_confidence)
            updates["last_intent"] = intent
            trigger = f"intent:{intent}"
        case c.Payment(amount=amount):
            updates["paid_total"] = conv.paid_total + amount
            updates["last_payment"] = amount
            trigger = "payment"
        case c.Agent(action=action):
            trigger = f"agent:{action.value}"
        case c.DeliveryFailed():
            trigger = "delivery_failed"
        case _:
            if conv.started_at is None:
                updates["started_at"] = now
            trigger = "start"
    work = _Work(cf, conv, event, now, conv.state, pending=updates)
    cf.machine.fire(work, trigger)
    return work.snapshot(), work.actions


def due_timers(conv: c.Conversation, until: datetime) -> list[tuple[datetime, str]]:
    return sorted((at, name) for name, at in conv.timers.items() if at <= until)


def run_until(
    cf: CompiledFlow, conv: c.Conversation, until: datetime
) -> Iterator[tuple[datetime, c.TimerFired, c.Conversation, list[c.AnyAction]]]:
    """Fire every timer due up to ``until``, each at its own time (a simulated clock)."""
    for _ in range(10_000):  # a flow that reschedules itself at zero delay must not hang us
        due = due_timers(conv, until)
        if not due:
            return
        at, name = due[0]
        event = c.TimerFired(name=name)
        conv, actions = step(cf, conv, event, at)
        yield at, event, conv, actions
    raise EngineError("timers keep firing; does a timeout reschedule itself with no delay?")


class Engine:
    """``step(conversation, event, now)`` against the current version of each flow."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def step(
        self, conv: c.Conversation, event: c.AnyEvent, now: datetime
    ) -> tuple[c.Conversation, list[c.AnyAction]]:
        return step(self.registry.get(conv.flow), conv, event, now)

"""Conversations, the events that move them and the actions they produce — all plain data.

A conversation is stored as JSON between steps; nothing of the state machine lives in it, so a
new flow version (or a new process) can pick it up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from dialogs.schema import AgentAction, Flag, Frozen

if TYPE_CHECKING:
    from intents.model import Understanding

Money = Annotated[Decimal, Field(ge=0, decimal_places=2)]


class Account(Frozen):
    """What the ledger tells us about the loan, as of the campaign start."""

    id: str
    name: str = Field(min_length=1)  # only ever shown masked
    amount_due: Money
    due_date: dt.date
    last4: str = Field(pattern=r"^\d{4}$")

    @property
    def masked_name(self) -> str:
        # CN-PII-01: surname plus one star per remaining character, at most 4 characters.
        return self.name[0] + "*" * min(max(len(self.name) - 1, 1), 3)


class Promise(Frozen):
    date: dt.date | None = None
    amount: Money | None = None
    made_at: AwareDatetime
    paid_before: Money = Decimal(0)  # total paid when the promise was made


class Instalment(Frozen):
    """One instalment of a plan a person agreed with the borrower (bot.desk records it)."""

    due: dt.date
    amount: Money = Field(gt=0)


def given_back_promise(conv: Conversation) -> tuple[dt.date, Decimal | None] | None:
    """The promise a person giving the conversation back at ``promised`` keeps when he names
    none: the plan's first instalment (the flow then moves through the rest), else the
    promise on record; None when neither has a day."""
    if conv.plan:
        return conv.plan[0].due, conv.plan[0].amount
    if conv.promise is not None and conv.promise.date is not None:
        return conv.promise.date, conv.promise.amount
    return None


def outstanding(amount_due: Decimal, paid_total: Decimal) -> Decimal:
    """What is still owed (never below zero: an overpayment owes nothing)."""
    return max(amount_due - paid_total, Decimal(0))


class Conversation(Frozen):
    id: str
    flow: str
    flow_version: str
    state: str
    account: Account
    started_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    flags: tuple[Flag, ...] = ()
    counters: dict[str, int] = Field(default_factory=dict)
    timers: dict[str, AwareDatetime] = Field(default_factory=dict)
    promise: Promise | None = None
    # An instalment plan agreed by a person: the instalments not yet kept, in date order. The
    # flow tracks one at a time as the promise (`next_instalment`, `plan_remaining`).
    plan: tuple[Instalment, ...] = ()
    paid_total: Money = Decimal(0)
    last_payment: Money | None = None
    last_intent: str | None = None

    @property
    def outstanding(self) -> Decimal:
        return outstanding(self.account.amount_due, self.paid_total)

    def has(self, flag: Flag) -> bool:
        return flag in self.flags


# --- events ----------------------------------------------------------------------------------


class ScoredIntent(Frozen):
    name: str
    score: float = Field(default=1.0, ge=0.0, le=1.0)


class ReplyEntities(Frozen):
    date: dt.date | None = None
    date_range: tuple[dt.date, dt.date] | None = None
    amount: Decimal | None = None
    installments: int | None = None
    unresolved: tuple[str, ...] = ()
    doubt: str | None = None  # the reply doubts that the sender is genuine (骗子, 是不是诈骗)

    @field_validator("amount", mode="before")
    @classmethod
    def _float_to_decimal(cls, v: object) -> object:
        # The NLU gives floats; str() keeps 0.1 from becoming 0.1000000000000000055.
        return Decimal(str(v)) if isinstance(v, float) else v

    def present(self) -> set[str]:
        out = set()
        if self.date is not None or self.date_range is not None:
            out.add("date")
        if self.amount is not None:
            out.add("amount")
        if self.installments is not None:
            out.add("installments")
        if self.unresolved:
            out.add("unresolved")
        if self.doubt:
            out.add("doubt")
        return out

    @property
    def pay_date(self) -> dt.date | None:
        """The day the borrower names: the date, or the last day of a range (the latest he said)."""
        return self.date or (self.date_range[1] if self.date_range else None)


class Start(Frozen):
    type: Literal["start"] = "start"


class Reply(Frozen):
    type: Literal["reply"] = "reply"
    text: str = ""
    intents: tuple[ScoredIntent, ...] = Field(min_length=1)
    entities: ReplyEntities = ReplyEntities()


class TimerFired(Frozen):
    type: Literal["timer"] = "timer"
    name: str


class Payment(Frozen):
    type: Literal["payment"] = "payment"
    amount: Money = Field(gt=0)


class Agent(Frozen):
    type: Literal["agent"] = "agent"
    action: AgentAction
    # What a person agreed with the borrower (agent:promised); unset: the promise on record.
    promise_date: dt.date | None = None
    promise_amount: Money | None = None

    @model_validator(mode="after")
    def _promise_has_a_day(self) -> Agent:
        # The flow schedules the reminder on the promised day (dialogs.availability counts on
        # it): a promise without a day is not a promise a bot can keep.
        if self.action == AgentAction.PROMISED and self.promise_date is None:
            raise ValueError("agent:promised needs the promised date")
        return self


class DeliveryFailed(Frozen):
    type: Literal["delivery_failed"] = "delivery_failed"
    reason: str = ""


AnyEvent = Start | Reply | TimerFired | Payment | Agent | DeliveryFailed
Event = Annotated[AnyEvent, Field(discriminator="type")]


def reply_from_understanding(u: Understanding) -> Reply:
    """The adapter from the NLU's output to the engine's input."""
    e = u.entities
    return Reply(
        text=u.text,
        intents=tuple(ScoredIntent(name=s.name.value, score=s.score) for s in u.intents)
        or (ScoredIntent(name=u.intent.value),),
        entities=ReplyEntities(
            date=e.date,
            date_range=e.date_range,
            amount=Decimal(str(e.amount)) if e.amount is not None else None,
            installments=e.installments,
            unresolved=e.unresolved,
            doubt=e.doubt,
        ),
    )


# --- actions ---------------------------------------------------------------------------------


class Send(Frozen):
    kind: Literal["send"] = "send"
    template: str
    text: str
    # What a mainland provider needs instead of text: the template code and the variable values
    # (settings such as the signature are fixed in the approved template, so not parameters).
    codes: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    length: int
    segments: int
    debt_content: bool


class Schedule(Frozen):
    kind: Literal["schedule"] = "schedule"
    timer: str
    at: AwareDatetime
    # ``after: 2d`` timers: the delay, counted again from when the step's message leaves
    # (dialogs.held.counted_from_delivery). None for a timer on a date, which never moves.
    after: dt.timedelta | None = None


class Cancel(Frozen):
    kind: Literal["cancel"] = "cancel"
    timer: str


class Handoff(Frozen):
    kind: Literal["handoff"] = "handoff"
    reason: str
    priority: str


class RecordPromise(Frozen):
    kind: Literal["record_promise"] = "record_promise"
    date: dt.date | None
    amount: Decimal | None


class SetFlag(Frozen):
    kind: Literal["flag"] = "flag"
    flag: Flag
    value: bool


class NotifyAgent(Frozen):
    kind: Literal["notify_agent"] = "notify_agent"
    message: str


class Close(Frozen):
    kind: Literal["close"] = "close"
    reason: str


class Blocked(Frozen):
    """A send the engine refused because of the conversation's flags (defence in depth)."""

    kind: Literal["blocked"] = "blocked"
    template: str
    reason: str


AnyAction = (
    Send | Schedule | Cancel | Handoff | RecordPromise | SetFlag | NotifyAgent | Close | Blocked
)
Action = Annotated[AnyAction, Field(discriminator="kind")]


def event_label(event: AnyEvent) -> str:
    """A one-line description of an event, for transcripts."""
    match event:
        case Reply():
            return f"borrower: {event.text}" if event.text else "borrower replied"
        case TimerFired():
            return f"timer {event.name} fired"
        case Payment():
            return f"payment of {event.amount} received"
        case Agent():
            return f"agent: {event.action.value}"
        case DeliveryFailed():
            return f"delivery failed {event.reason}".strip()
        case _:
            return "campaign start"


def fingerprint(conv: Conversation) -> str:
    """What a message held back by the gate depends on: if any of it changed when it would
    leave (a reply, a payment, a stop), the flow has moved on and the message is stale."""
    parts = (
        conv.state,
        sorted(f.value for f in conv.flags),
        str(conv.paid_total),
        conv.promise.model_dump_json() if conv.promise else "",
        sorted(conv.counters.items()),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

"""Service-level records kept by the store: accounts, queued events, outbound SMS, audit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.ids import new_id
from bot.privacy import mask_phone
from bot.transport.inbound import InboundSms, e164


def shared_phone(phone: str, other: str, account_id: str) -> str:
    """What an upload or import says when ``account_id`` takes a phone ``other`` has: taken
    (one borrower may have two loans), but a reply from it reaches one conversation only."""
    return (
        f"phone {mask_phone(phone)} is also account {other}'s; replies from it now go to"
        f" {account_id}"
    )


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AccountRecord(_Record):
    """A borrower's loan account as the lender's ledger gives it (POST /api/accounts)."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = Field(min_length=1, max_length=50)
    phone: str = Field(min_length=5, max_length=32)
    amount_due: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    days_overdue: int = Field(ge=0, le=36500)
    due_date: dt.date
    tz: str | None = None  # unset: from the phone number and the compliance pack
    pack: str | None = None  # compliance rule pack (cn, us); unset: the default pack
    # The loan's last four digits, quoted by the templates (尾号1234的借款). Defaults to the
    # account id's last four digits when those are digits.
    last4: str | None = Field(default=None, pattern=r"^\d{4}$")
    flow: str = "collections"

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        normalised = e164(v)
        if not 8 <= len(normalised) <= 16:
            raise ValueError("not a phone number (E.164 such as +8613800138000)")
        return normalised

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _last4(self) -> AccountRecord:
        if self.last4 is None:
            tail = self.id[-4:]
            if not (len(tail) == 4 and tail.isdigit()):
                raise ValueError("last4 is required when the account id does not end in 4 digits")
            object.__setattr__(self, "last4", tail)
        return self


EventKind = Literal["inbound", "start", "payment", "agent", "tick", "delivery_failed"]


DeskDo = Literal["resolve", "promise", "plan", "hold", "message"]


class Instalment(_Record):
    due: dt.date
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)


class DeskAction(_Record):
    """What a person did at the console (bot.desk), carried by an ``agent`` event so that it
    goes through the account's queue and never races the pipeline."""

    agent: str = Field(min_length=1, max_length=64)
    case_id: str | None = None
    do: DeskDo
    # resolve: the case closes in this event's commit; "returned" steps the flow with the
    # event's ``action`` (the chosen state's agent rule), "kept_paused" leaves the
    # conversation with a person, "closed" steps it with agent:closed.
    resolution: Literal["returned", "kept_paused", "closed"] | None = None
    to_state: str | None = None
    promise_date: dt.date | None = None  # promise (and resolve to the promised state)
    promise_amount: Decimal | None = Field(default=None, gt=0, decimal_places=2)
    plan: list[Instalment] | None = None
    hold: Literal["disputed", "hardship"] | None = None
    hold_on: bool = True
    note: str | None = Field(default=None, max_length=2000)
    # message: a person's SMS to the borrower, free text or one of the flow's templates
    # (rendered when the event is applied). The id is chosen when it is queued, so the
    # console is told the id the message will carry, and a retried event sends it once.
    message_id: str | None = Field(default=None, max_length=64)
    text: str | None = Field(default=None, max_length=500)
    template: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _message(self) -> DeskAction:
        # Checked here, at the boundary: the interpreter must not fail on a queued event.
        if self.do == "message" and (
            self.message_id is None or (self.text is None) == (self.template is None)
        ):
            raise ValueError("a message has its id and exactly one of text and template")
        return self


class QueuedEvent(_Record):
    """Something that happened to one account, queued in arrival order until processed."""

    id: str = Field(default_factory=new_id)
    kind: EventKind
    at: AwareDatetime  # when it arrived (the clock the dialog steps with)
    inbound: InboundSms | None = None
    amount: Decimal | None = None  # payment
    reference: str | None = None  # payment
    action: str | None = None  # agent: resolved | returned | closed | promised
    reason: str | None = None
    desk: DeskAction | None = None  # agent: a console action (bot.desk)


SendKind = Literal["proactive", "reply", "confirmation"]


class Outbound(_Record):
    id: str = Field(default_factory=new_id)
    account_id: str
    phone: str
    text: str
    template: str
    codes: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    segments: int = 1
    debt_content: bool = True
    created_at: AwareDatetime
    # For the compliance gate: why it is sent, whether compliance approved its wording, and
    # the conversation it was written for (a deferred message the flow no longer wants is
    # dropped when the conversation has moved on).
    kind: SendKind = "proactive"
    approved: bool = False
    fingerprint: str = ""
    not_before: AwareDatetime | None = None
    # Timers the flow set in the step that wrote this message (name -> due): they count from
    # when it leaves (bot.interpret: the flow's clock follows delivery). ``after: 2d`` timers
    # only, with their delay: a timer on a date never moves. Messages stored before the
    # delays were kept have paces without them (counted as then: shifted by the hold).
    paces: dict[str, AwareDatetime] = Field(default_factory=dict)
    pace_delays: dict[str, dt.timedelta] = Field(default_factory=dict)


class SendRecord(_Record):
    """One message that went out, in the per-phone ledger the frequency caps count."""

    at: AwareDatetime
    account_id: str
    message_id: str
    kind: SendKind
    text_hash: str


class AuditEntry(_Record):
    """One line of an account's append-only history (evidence of every decision)."""

    at: AwareDatetime
    kind: str  # inbound | understood | step | send | sent | blocked | handoff | payment | ...
    detail: dict[str, Any] = Field(default_factory=dict)


def audit_entry(at: dt.datetime, kind: str, /, **detail: Any) -> AuditEntry:
    """An audit entry; details that are None are left out."""
    # Validated: pydantic-core's validation of a small model is faster than model_construct
    # (measured: 1.5 µs against 1.9 µs), so skipping it would buy nothing.
    return AuditEntry(at=at, kind=kind, detail={k: v for k, v in detail.items() if v is not None})

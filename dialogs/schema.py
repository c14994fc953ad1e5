"""Pydantic models of the files operators edit: flows and templates.

These models check *shape* (field names, types, one action per list item). Whether a flow is
*safe* — stop honoured everywhere, no dead ends, templates fit — is :mod:`dialogs.validate`'s job.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from intents.model import INTENT_NAMES


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- durations -------------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(value: object) -> timedelta:
    """``2d``, ``4h``, ``1d12h``, ``30m`` → timedelta. Plain numbers are refused: units matter."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().replace(" ", "")
    m = _DURATION.match(text)
    if not text or m is None or not any(m.groups()):
        raise ValueError(f"{value!r} is not a duration; write e.g. 2d, 4h, 1d12h or 30m")
    d, h, mins = (int(g) if g else 0 for g in m.groups())
    delta = timedelta(days=d, hours=h, minutes=mins)
    if delta <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return delta


def format_duration(delta: timedelta) -> str:
    total = int(delta.total_seconds()) // 60
    d, rest = divmod(total, 24 * 60)
    h, m = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((d, "d"), (h, "h"), (m, "m")) if n) or "0m"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


# --- names -----------------------------------------------------------------------------------


class Flag(StrEnum):
    """Flags the engine and the outbound rules understand; free-form flags would be typos."""

    PAUSED = "paused"
    OPTED_OUT = "opted_out"
    WRONG_NUMBER = "wrong_number"
    DISPUTED = "disputed"
    HARDSHIP = "hardship"


class AgentAction(StrEnum):
    RESOLVED = "resolved"
    RETURNED = "returned"
    CLOSED = "closed"
    # A person agreed a day (and perhaps an amount) with the borrower and gives the
    # conversation back to the bot to keep it: the event carries the promise (bot.desk).
    PROMISED = "promised"


class Owner(StrEnum):
    BOT = "bot"  # the bot talks; the state waits for the borrower and needs a timeout
    AGENT = "agent"  # a human owns the conversation; the bot sends no debt content


EntityName = Literal["date", "amount", "installments", "unresolved", "doubt"]
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SIMPLE_TRIGGERS = ("start", "payment", "timeout", "delivery_failed")


def check_trigger(value: str) -> str:
    """Validate an event name as operators write it after ``when:``."""
    if value in _SIMPLE_TRIGGERS:
        return value
    kind, _, arg = value.partition(":")
    if kind == "intent" and (arg == "*" or arg in INTENT_NAMES):
        return value
    if kind == "intent":
        raise ValueError(f"unknown intent {arg!r}; known: {', '.join(INTENT_NAMES)} or *")
    if kind == "timer" and NAME.match(arg):
        return value
    if kind == "agent" and arg in {a.value for a in AgentAction}:
        return value
    raise ValueError(
        f"unknown event {value!r}; write one of intent:<name>, intent:*, timer:<name>, timeout, "
        "payment, agent:resolved|returned|closed|promised, start, delivery_failed"
    )


Trigger = Annotated[str, BeforeValidator(lambda v: check_trigger(str(v)))]
Name = Annotated[str, Field(pattern=NAME.pattern)]


# --- conditions and actions ------------------------------------------------------------------


class Condition(Frozen):
    """All given tests must hold. ``if:`` on a rule."""

    entity: list[EntityName] = Field(default_factory=list)
    no_entity: list[EntityName] = Field(default_factory=list)
    any_entity: list[EntityName] = Field(default_factory=list)  # at least one of them
    # The reply carries every one of these intents, primary or not (a stop that also promises).
    intents: list[str] = Field(default_factory=list)
    within_days: int | None = Field(default=None, ge=0)
    amount_covers_due: bool | None = None
    paid_in_full: bool | None = None
    promise_kept: bool | None = None
    # An instalment plan has an instalment due after the current promise (`next_instalment`).
    plan_remaining: bool | None = None
    # The promise is one of the plan's instalments (so it has a day and an amount).
    instalment: bool | None = None
    # The promise on record names a sum (我周五先还500): `{promised_amount}` has a value.
    promise_has_amount: bool | None = None
    counter_below: dict[Name, int] = Field(default_factory=dict)
    counter_at_least: dict[Name, int] = Field(default_factory=dict)
    flags: list[Flag] = Field(default_factory=list)
    not_flags: list[Flag] = Field(default_factory=list)

    @field_validator(
        "entity", "no_entity", "any_entity", "intents", "flags", "not_flags", mode="before"
    )
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("intents")
    @classmethod
    def _known_intents(cls, v: list[str]) -> list[str]:
        unknown = [i for i in v if i not in INTENT_NAMES]
        if unknown:
            raise ValueError(f"unknown intent {unknown[0]!r}; known: {', '.join(INTENT_NAMES)}")
        return v

    @property
    def guaranteed_entities(self) -> set[str]:
        out: set[str] = set(self.entity)
        if self.within_days is not None:
            out.add("date")  # a date can only be within N days if there is one
        if self.amount_covers_due:
            out.add("amount")
        return out


class Delay(Frozen):
    """When a timer fires: ``after: 2d``, or on the promised date (``plus_days``, ``at``)."""

    after: Duration | None = None
    on_date: Literal["promised_date"] | None = None
    plus_days: int = 0
    at: time | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _hhmm(cls, v: Any) -> Any:
        # YAML reads an unquoted 09:30 as the sexagesimal integer 570; take it back as minutes.
        if isinstance(v, int):
            return time(v // 60, v % 60)
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> Delay:
        if (self.after is None) == (self.on_date is None):
            raise ValueError("give either `after: <duration>` or `on_date: promised_date`")
        if self.after is not None and (self.plus_days or self.at is not None):
            raise ValueError("`plus_days` and `at` go with `on_date`, not with `after`")
        return self


class Schedule(Delay):
    timer: Name


class Handoff(Frozen):
    reason: Name
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


ACTION_KINDS = (
    "send",
    "schedule",
    "cancel",
    "handoff",
    "record_promise",
    "next_instalment",
    "set_flag",
    "clear_flag",
    "increment",
    "reset",
    "notify_agent",
    "close",
)


class ActionSpec(Frozen):
    """One item of a ``do:`` list: exactly one of the fields below."""

    send: Name | None = None
    schedule: Schedule | None = None
    cancel: Name | None = None  # a timer name, or `all`
    handoff: Handoff | None = None
    record_promise: Literal[True] | None = None
    # The plan's next instalment becomes the promise (the kept ones leave the plan).
    next_instalment: Literal[True] | None = None
    set_flag: Flag | None = None
    clear_flag: Flag | None = None
    increment: Name | None = None
    reset: Name | None = None
    notify_agent: str | None = None
    close: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_word(cls, v: Any) -> Any:
        # `- record_promise` reads better than `- record_promise: true`
        if v in ("record_promise", "next_instalment"):
            return {v: True}
        if isinstance(v, str):
            raise ValueError(f"{v!r} is not an action; write e.g. `send: <template>`")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> ActionSpec:
        given = [k for k in ACTION_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "each `do:` item is exactly one action ("
                + ", ".join(ACTION_KINDS)
                + f"); got {', '.join(given) or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ACTION_KINDS if getattr(self, k) is not None)


class Rule(Frozen):
    """``when`` an event happens (``if`` the conditions hold): go ``to`` a state and ``do`` things.

    Without ``to`` the conversation stays where it is and the state's entry actions do not run.
    """

    when: Trigger
    if_: Condition | None = Field(default=None, alias="if")
    to: Name | None = None
    do: list[ActionSpec] = Field(default_factory=list)
    always: bool = False  # global rules only: tried before the state's own rules

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def conditional(self) -> bool:
        return self.if_ is not None and self.if_ != Condition()


class State(Frozen):
    description: str = ""
    terminal: bool = False
    owner: Owner = Owner.BOT
    entry: list[ActionSpec] = Field(default_factory=list)
    timeout: Delay | None = None
    rules: list[Rule] = Field(default_factory=list)


class Settings(Frozen):
    """Constants every template may use, and limits the validator enforces."""

    signature: str = Field(min_length=2, max_length=12)  # Aliyun: 2–12 characters
    creditor: str
    hotline: str
    app_link: str = ""
    timezone: str = "Asia/Shanghai"
    max_segments: int = Field(default=2, ge=1, le=7)
    # Timers that fall outside this window are moved to its next opening (CN-TIME-01).
    send_window: tuple[time, time] = (time(8, 0), time(21, 0))
    providers: list[Name] = Field(default_factory=list)
    # Replies the NLU is less sure about than this are handled as `unknown`.
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    # The rule pack (config/compliance.yaml) whose content rules `flows validate` applies to
    # every template, as the gate will at send time; none: the file's default pack.
    compliance_pack: str | None = None

    @field_validator("signature")
    @classmethod
    def _bare_signature(cls, v: str) -> str:
        if "【" in v or "】" in v:
            raise ValueError("write the signature without 【】; templates add the brackets")
        return v

    @field_validator("send_window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = (v.get("start"), v.get("end"))
        return tuple(time(x // 60, x % 60) if isinstance(x, int) else x for x in v)


class FlowSpec(Frozen):
    flow: Name
    description: str = ""
    settings: Settings
    initial: Name
    template_files: list[str] = Field(default_factory=list)
    templates: dict[Name, TemplateSpec] = Field(default_factory=dict)
    global_rules: list[Rule] = Field(default_factory=list)
    states: dict[Name, State]
    migrations: dict[str, Name] = Field(default_factory=dict)


class Approval(Frozen):
    """Compliance's approval of a template's soft-risk wording (CN-CONTENT-02): who and when.

    It covers the soft-risk findings of the text as approved (``flows validate`` lists them);
    hard-prohibited wording (threats, exposure, impersonation …) is never covered.
    """

    approved_by: str = Field(min_length=2)
    approved_at: date
    note: str = ""  # e.g. the review ticket


class TemplateSpec(Frozen):
    text: str = Field(min_length=1)
    description: str = ""
    # False promises the text says nothing about the debt, so it may go to an opted-out or
    # wrong number; the validator checks the promise against words and variables.
    debt_content: bool = True
    # Soft-risk words (征信, 起诉 …) are allowed only in wording compliance has approved, and
    # the approval names who approved it and when. It never covers hard-prohibited wording.
    compliance_approved: Approval | None = None
    codes: dict[Name, str] = Field(default_factory=dict)
    # A text about a day to come (届时, 计划于{promised_date}): held past that day (a promise for
    # tonight answered after the send window closed), it is dropped, not sent naming a day gone.
    until: Literal["promised_date"] | None = None

    @field_validator("compliance_approved", mode="before")
    @classmethod
    def _reviewer_recorded(cls, v: Any) -> Any:
        if v is True:
            raise ValueError(
                "an approval records its reviewer: write `compliance_approved: {approved_by: "
                "<name>, approved_at: YYYY-MM-DD}`"
            )
        return None if v is False else v

    @property
    def approved(self) -> bool:
        return self.compliance_approved is not None

    @field_validator("text")
    @classmethod
    def _join_lines(cls, v: str) -> str:
        # Long texts are written over several lines; an SMS has no line breaks, and a folded
        # YAML line would put a space between two Chinese characters.
        return "".join(line.strip() for line in v.splitlines())


class TemplateFile(Frozen):
    templates: dict[Name, TemplateSpec]


FlowSpec.model_rebuild()

"""Rule packs (``config/compliance.yaml``): the numbers and lists the gate enforces.

Every value is a default counsel should confirm (see the research notes); operators change
them in the file, never in code. Loading validates everything and names file, line and field.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.errors import ConfigError, Problem
from common.yamlio import load_yaml, validation_problems

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
DEFAULT_FILE = CONFIG_DIR / "compliance.yaml"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Spec):
    """When a message may *arrive*, in the borrower's local time."""

    start: dt.time = dt.time(8, 0)
    end: dt.time = dt.time(21, 0)
    hard_end: dt.time = dt.time(22, 0)  # the legal line; `end` is our earlier, safer one
    latency_buffer_min: int = Field(default=45, ge=0, le=180)  # carriers deliver late

    @model_validator(mode="after")
    def _order(self) -> Window:
        if not self.start < self.end <= self.hard_end:
            raise ValueError("need start < end <= hard_end")
        span = dt.datetime.combine(dt.date.min, self.end) - dt.datetime.combine(
            dt.date.min, self.start
        )
        if dt.timedelta(minutes=self.latency_buffer_min) >= span:
            raise ValueError("latency_buffer_min leaves no time in the window to send")
        return self


BorrowerAction = Literal["inbound", "payment"]
_BORROWER_ACTIONS: tuple[BorrowerAction, ...] = ("inbound", "payment")


class Frequency(_Spec):
    proactive_max_per_day: int = Field(default=1, ge=0)
    proactive_max_per_7d: int = Field(default=3, ge=0)
    reply_max_per_day: int = Field(default=10, ge=0)
    identical_text_min_gap_h: int = Field(default=24, ge=0)
    # The borrower's own actions: a message answering one (a reply's answer, a payment's
    # receipt) is a reply, under the reply cap; everything else the bot starts (reminders,
    # follow-ups, promise checks) is proactive collection contact.
    reply_to: list[BorrowerAction] = Field(default_factory=lambda: list(_BORROWER_ACTIONS))


class OptOut(_Spec):
    keywords: list[str] = Field(min_length=1)
    # US: START/UNSTOP re-enable SMS, but never over a dispute or cease hold. Empty in CN.
    resubscribe_keywords: list[str] = Field(default_factory=list)
    max_confirmations: int = Field(default=1, ge=0, le=1)


class Content(_Spec):
    lexicons: list[str] = Field(min_length=1)  # files relative to config/
    meaning: list[str] = Field(default_factory=list)  # meaning-rule files, relative to config/
    signature_whitelist: list[str] = Field(min_length=1)
    creditor_names: list[str] = Field(min_length=1)
    official_contacts: list[str] = Field(min_length=1)  # hotlines, official app names, links
    required_every: list[str] = Field(default_factory=list)  # e.g. the US opt-out line
    required_first_contact: list[str] = Field(default_factory=list)  # e.g. US mini-Miranda
    max_segments: int = Field(default=2, ge=1, le=10)


class Holds(_Spec):
    """Conversation flags (and agent ownership) that pause collection content."""

    flags: list[str] = Field(default_factory=lambda: ["paused", "disputed", "ceased"])
    agent_owned: bool = True


class Pack(_Spec):
    name: str
    description: str = ""
    timezone_default: str
    # Phone prefix → the zones the borrower may be in (longest prefix wins; several zones mean
    # the window must hold in every one of them).
    phone_zones: dict[str, list[str]] = Field(default_factory=dict)
    window: Window = Window()
    frequency: Frequency = Frequency()
    optout: OptOut
    content: Content
    holds: Holds = Holds()

    @field_validator("timezone_default")
    @classmethod
    def _tz(cls, v: str) -> str:
        _zone(v)
        return v

    @field_validator("phone_zones")
    @classmethod
    def _zones(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for prefix, zones in v.items():
            if not prefix.startswith("+") or not prefix[1:].isdigit():
                raise ValueError(f"phone prefix {prefix!r}: expected + and digits (+86, +1212)")
            for z in zones:
                _zone(z)
        return v


class PackFile(_Spec):
    default_pack: str
    packs: dict[str, Pack]

    @model_validator(mode="after")
    def _default_exists(self) -> PackFile:
        if self.default_pack not in self.packs:
            raise ValueError(
                f"default_pack {self.default_pack!r} is not one of {sorted(self.packs)}"
            )
        return self


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def load_packs(path: Path = DEFAULT_FILE) -> PackFile:
    doc = load_yaml(path)
    try:
        packs = PackFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc)) from exc
    problems = [
        Problem(
            doc.file,
            doc.line(("packs", name, "content", key, i)),
            f"no such file: {ref}",
            f"packs.{name}.content.{key}.{i}",
        )
        for name, pack in packs.packs.items()
        for key, refs in (("lexicons", pack.content.lexicons), ("meaning", pack.content.meaning))
        for i, ref in enumerate(refs)
        if not (path.parent / ref).exists()
    ]
    if problems:
        raise ConfigError(problems)
    return packs

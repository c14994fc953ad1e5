"""The NLU's output: what a borrower's reply means, with its evidence."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Intent(StrEnum):
    PROMISE_TO_PAY = "promise_to_pay"
    ALREADY_PAID = "already_paid"
    DISPUTE = "dispute"
    HARDSHIP = "hardship"
    REQUEST_PLAN = "request_plan"
    REFUSE_TO_PAY = "refuse_to_pay"
    STOP = "stop"
    WRONG_NUMBER = "wrong_number"
    REQUEST_HUMAN = "request_human"
    ASK_INFO = "ask_info"
    ABUSE = "abuse"
    ACKNOWLEDGE = "acknowledge"
    UNKNOWN = "unknown"


INTENT_NAMES: tuple[str, ...] = tuple(i.value for i in Intent)

# DATA.md's label order, what the flow must act on first (legal and safety intents lead): a
# reply's intents are listed in it and the first is the primary.
LABEL_ORDER: tuple[Intent, ...] = (
    Intent.STOP, Intent.WRONG_NUMBER, Intent.DISPUTE, Intent.HARDSHIP, Intent.ALREADY_PAID,
    Intent.REQUEST_PLAN, Intent.PROMISE_TO_PAY, Intent.REFUSE_TO_PAY, Intent.REQUEST_HUMAN,
    Intent.ASK_INFO, Intent.ABUSE, Intent.ACKNOWLEDGE, Intent.UNKNOWN,
)  # fmt: skip


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IntentScore(_Frozen):
    name: Intent
    score: float = Field(ge=0.0, le=1.0)


class Span(_Frozen):
    """A piece of the normalised text that was read as an entity."""

    kind: str  # date | date_range | amount | installments | unresolved_date
    text: str
    start: int
    end: int
    value: Any = None


class Entities(_Frozen):
    date: dt.date | None = None
    date_range: tuple[dt.date, dt.date] | None = None
    amount: float | None = None
    installments: int | None = None
    # Time phrases nothing can resolve (发工资后): kept raw for a human or the flow.
    unresolved: tuple[str, ...] = ()
    # The words with which the reply doubts that the sender is genuine (骗子, 是不是诈骗):
    # whatever the intent, the flow answers with the official way to check (issue 16).
    doubt: str | None = None


class RuleHit(_Frozen):
    rule: str
    intent: Intent
    weight: float
    match: str
    hard: bool = False


class Explanation(_Frozen):
    normalized: str
    stripped_quote: str | None = None
    rules: tuple[RuleHit, ...] = ()
    suppressed: tuple[RuleHit, ...] = ()
    model: dict[str, float] = Field(default_factory=dict)
    spans: tuple[Span, ...] = ()
    cached: bool = False


class Understanding(_Frozen):
    text: str
    intent: Intent
    intents: tuple[IntentScore, ...]
    entities: Entities
    explain: Explanation

    def has(self, intent: Intent | str) -> bool:
        return any(s.name == intent for s in self.intents)

    def score(self, intent: Intent | str) -> float:
        return next((s.score for s in self.intents if s.name == intent), 0.0)

    def to_json_dict(self) -> dict[str, Any]:
        """The CLI's documented JSON shape."""
        return {
            "text": self.text,
            "intent": self.intent.value,
            "intents": [{"name": s.name.value, "score": round(s.score, 4)} for s in self.intents],
            "entities": self.entities_json(),
            "explain": self.explain.model_dump(mode="json"),
        }

    def entities_json(self) -> dict[str, Any]:
        """The entities alone, as in :meth:`to_json_dict` (the service audits these)."""
        e = self.entities
        return {
            "date": e.date.isoformat() if e.date else None,
            "date_range": [d.isoformat() for d in e.date_range] if e.date_range else None,
            "amount": e.amount,
            "installments": e.installments,
            "unresolved": list(e.unresolved),
            "doubt": e.doubt,
        }

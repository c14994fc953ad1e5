"""A case: one conversation waiting for, or held by, a person — opened by the flow's handoff.

Cases are written only by atomic store steps (``bot.storage.desk``): opened or raised in the
commit of the event whose step handed off, resolved in the commit of the agent's resolving
event, claimed, released, reassigned, annotated and expired by single-account scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bot.desk.errors import InvalidRequest, PermissionDenied
from bot.ids import new_id

CaseState = Literal["waiting", "claimed", "resolved"]
Priority = Literal["low", "normal", "high", "urgent"]
PRIORITY_RANK: dict[str, int] = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
Role = Literal["agent", "supervisor"]


class CaseEntry(BaseModel):
    """One line of a case's history: an assignment change, a raise, a note, the expiry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    kind: str  # opened | raised | claimed | released | reassigned | note | expired | resolved
    by: str | None = None  # the agent (None: the bot or the SLA step)
    detail: dict[str, Any] = Field(default_factory=dict)


class Case(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_id)
    account_id: str
    reason: str
    priority: Priority = "normal"
    opened_at: AwareDatetime
    sla_due: AwareDatetime
    state: CaseState = "waiting"
    holder: str | None = None
    claimed_at: AwareDatetime | None = None
    expired_at: AwareDatetime | None = None  # unclaimed past its SLA: top of the queue
    resolved_at: AwareDatetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None  # returned:<state> | kept_paused | closed
    version: int = 1  # every store step on the case adds one
    history: list[CaseEntry] = Field(default_factory=list)
    notes: list[CaseEntry] = Field(default_factory=list)

    @property
    def rank(self) -> int:
        return PRIORITY_RANK[self.priority]

    def expired(self, now: datetime) -> bool:
        """Past its SLA with nobody on it (marked by the SLA step, or due by now)."""
        return self.state == "waiting" and (self.expired_at is not None or self.sla_due <= now)


def check_agent(agent: str, role: str) -> Role:
    """The acting agent's role, or the refusal of a call that names nobody or no known role."""
    if not agent or not agent.strip() or len(agent) > 64:
        raise InvalidRequest("the agent's name is required (at most 64 characters)")
    if role not in get_args(Role):
        raise PermissionDenied(f"unknown role {role!r}; known: {', '.join(get_args(Role))}")
    return role  # type: ignore[return-value]


def queue_order(cases: list[Case], now: datetime) -> list[Case]:
    """Expired SLA first, then higher priority, then the longest waiting."""
    return sorted(cases, key=lambda k: (not k.expired(now), -k.rank, k.opened_at, k.id))


@dataclass(frozen=True)
class Opening:
    """A handoff's effect on the queue, applied in the event's commit: a new case if none is
    open, else the open one is raised (a higher priority takes its reason; the earlier SLA
    stands)."""

    case: Case  # the case to open (its id, reason, priority, times)


@dataclass(frozen=True)
class Resolving:
    """Closes the open case ``case_id`` in the commit of the agent's resolving event."""

    case_id: str
    by: str
    at: datetime
    resolution: str


@dataclass(frozen=True)
class CaseChange:
    """What one commit does to the account's case: resolve first, then open (an event may do
    both: an agent closes a case and the step hands off again)."""

    resolve: Resolving | None = None
    open: Opening | None = None

    def __bool__(self) -> bool:
        return self.resolve is not None or self.open is not None

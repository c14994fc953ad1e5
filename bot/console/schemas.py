"""The console's JSON bodies (``/api/console/…``), as pydantic models: the OpenAPI document
(bot/openapi.py) is generated from them and the tests validate real responses against them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool

from bot.console.agents import MAX_PASSWORD
from bot.desk.case import Case
from bot.records import Instalment
from bot.storage.agents import AgentRecord, Role

MAX_AMOUNT = Decimal(1_000_000_000)  # no consumer loan is larger: a typo, refused with a reason


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class AgentView(BaseModel):
    """An agent as the console shows it (never the password hash)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role
    disabled: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @classmethod
    def of(cls, agent: AgentRecord) -> AgentView:
        return cls(
            name=agent.name,
            role=agent.role,
            disabled=agent.disabled,
            created_at=agent.created_at,
            updated_at=agent.updated_at,
        )


class SignedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AgentView
    csrf_token: str = Field(description="send it as X-CSRF-Token with every write")


class AgentList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agents: list[AgentView]


# --- the case queue (bot/console/cases.py) ---------------------------------------------------


class CaseAction(BaseModel):
    """Every write on a case names the case it means: a click on a case that was resolved
    and opened again meanwhile is refused (404), not applied to the new one."""

    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(min_length=1, max_length=64)


class ReassignBody(CaseAction):
    to: str = Field(min_length=1, max_length=64, description="the agent who takes the case")


class NoteBody(CaseAction):
    text: str = Field(min_length=1, max_length=2000)


class PromiseBody(CaseAction):
    date: dt.date
    amount: Decimal | None = Field(default=None, gt=0, le=MAX_AMOUNT)


class PlanBody(CaseAction):
    # Replaces the plan on record; an empty list clears it.
    instalments: list[Instalment] = Field(max_length=36)


class HoldBody(CaseAction):
    hold: Literal["disputed", "hardship"]
    on: StrictBool  # true or false, not "yes"


class ResolveBody(CaseAction):
    how: Literal["return", "keep_paused", "close"] = Field(
        description="return: give back to the bot at to_state; keep_paused: no case, the"
        " conversation stays with people; close: end the conversation"
    )
    to_state: str | None = Field(default=None, max_length=64)
    promise_date: dt.date | None = None
    promise_amount: Decimal | None = Field(default=None, gt=0, le=MAX_AMOUNT)
    note: str | None = Field(default=None, max_length=2000)


class MessageBody(CaseAction):
    """Free text or one of the flow's templates (filled in with the account's values)."""

    text: str | None = Field(default=None, max_length=500)
    template: str | None = Field(default=None, max_length=64)


class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=64)


class CaseRow(BaseModel):
    """A case as the queue lists it: the borrower masked, the waiting time and the SLA."""

    model_config = ConfigDict(extra="forbid")

    case: Case
    name: str = Field(description="masked")
    phone: str = Field(description="masked")
    waiting_s: int = Field(description="seconds since the case was opened")
    sla_left_s: int = Field(description="seconds until the SLA runs out (negative: overdue)")
    expired: bool = Field(description="unclaimed past its SLA: at the top of the queue")


class CaseList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[CaseRow] = Field(description="the queue's top, in order (at most `limit`)")
    total: int = Field(description="how many open cases match the filters in all")
    reasons: list[str] = Field(description="the handoff reasons of config/desk.yaml (filters)")


class CaseResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case: Case


class Queued(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queued: bool = Field(
        description="true: the action is queued on the account (applied in order with the"
        " borrower's replies); false: the same action was queued already (a second click)"
    )


class UnmatchedRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str
    msg_id: str
    phone: str = Field(description="masked")
    text: str = Field(description="ID and card numbers masked")
    received_at: AwareDatetime


class UnmatchedList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[UnmatchedRow]


class TemplateView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    text: str = Field(description="filled in with the account's values")
    approved: bool = Field(description="compliance-approved wording")


class TemplateList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    templates: list[TemplateView]

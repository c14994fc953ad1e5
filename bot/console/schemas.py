"""The console's JSON bodies (``/api/console/…``), as pydantic models: the OpenAPI document
(bot/openapi.py) is generated from them and the tests validate real responses against them."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bot.console.agents import MAX_PASSWORD
from bot.storage.agents import AgentRecord, Role


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

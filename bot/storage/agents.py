"""The agents' store seam: who may sign in to the console (bot/console), and as what.

Kept apart from :class:`bot.storage.base.Store` on purpose: the ``smsbot agents`` commands
need only this (no NLU, no flows), and the console's storage can grow without touching the
message path's 40-method seam. Like the main store it has a memory implementation (the
zero-set-up default) and a Redis one (``redis_agents.py``), and one contract suite runs over
both (tests/service/test_agent_store_contract.py).

Every change to a record goes through :meth:`AgentStore.replace`, a compare-and-set on
``generation``: the generation only grows, and a signed-in session remembers the one it was
made with, so a new password, a disabled flag or a role change ends every existing session of
that agent (bot/console/auth.py), and of two concurrent changes the later one is refused
instead of silently undoing the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from common.errors import SmsbotError

Role = Literal["agent", "supervisor"]
ROLES: tuple[Role, ...] = ("agent", "supervisor")
# Lower-case ASCII: a name is typed at a sign-in form on a phone, appears in logs and in Redis
# keys, and two agents must not differ only by case or by a look-alike character.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,31}$"


class AgentError(SmsbotError):
    """An agent command or change that cannot be done (unknown name, taken name, bad
    password, a concurrent change)."""


class AgentRecord(BaseModel):
    """One console user. ``password_hash`` is an argon2id hash (bot/console/passwords.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    password_hash: str = Field(min_length=1)
    disabled: bool = False
    # Grows by one on every change; sessions made before a change no longer match it.
    generation: int = Field(default=1, ge=1)
    created_at: AwareDatetime
    updated_at: AwareDatetime

    def changed(self, at: datetime, **fields: object) -> AgentRecord:
        """The next version of this record (for :meth:`AgentStore.replace`)."""
        return self.model_copy(
            update={**fields, "generation": self.generation + 1, "updated_at": at}
        )


class AgentStore(ABC):
    """Agents by name. Implementations must make ``create`` and ``replace`` atomic across
    processes (the CLI and several service processes share one Redis)."""

    @abstractmethod
    async def create(self, agent: AgentRecord) -> bool:
        """Stores a new agent; False (nothing written) if the name is taken."""

    @abstractmethod
    async def get(self, name: str) -> AgentRecord | None: ...

    @abstractmethod
    async def replace(self, agent: AgentRecord) -> bool:
        """Stores ``agent`` if the stored record's generation is ``agent.generation - 1``
        (nobody changed it since it was read); False otherwise, or if there is none."""

    @abstractmethod
    async def all(self) -> list[AgentRecord]:
        """Every agent, by name."""

    @abstractmethod
    async def close(self) -> None:
        """Releases connections."""


class MemoryAgentStore(AgentStore):
    """One process only; nothing survives a restart (``make run``, tests)."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}

    async def create(self, agent: AgentRecord) -> bool:
        if agent.name in self._agents:
            return False
        self._agents[agent.name] = agent
        return True

    async def get(self, name: str) -> AgentRecord | None:
        return self._agents.get(name)

    async def replace(self, agent: AgentRecord) -> bool:
        current = self._agents.get(agent.name)
        if current is None or current.generation != agent.generation - 1:
            return False
        self._agents[agent.name] = agent
        return True

    async def all(self) -> list[AgentRecord]:
        return [self._agents[name] for name in sorted(self._agents)]

    async def close(self) -> None:
        pass  # nothing to release


def open_agent_store(redis_url: str | None) -> AgentStore:
    """The agent store the settings name: Redis when ``SMSBOT_REDIS_URL`` is set (the same
    server as the main store), else memory. Connects lazily."""
    if not redis_url:
        return MemoryAgentStore()
    from bot.storage.redis_agents import RedisAgentStore  # hiredis only when needed

    return RedisAgentStore.from_url(redis_url)

"""The agents' store on Redis: one hash, ``smsbot:agents`` (name -> AgentRecord JSON).

One key, so creation (HSETNX) and the compare-and-set of :meth:`RedisAgentStore.replace` (one
Lua script) are atomic without a transaction, and listing is one HGETALL: a call centre has
tens or hundreds of agents, never millions. It runs on its own
:class:`~bot.storage.resp.RedisConnection` (the CLI uses it without the main store; in the
service it is one more socket to the same server), so connection and timeout errors are
:class:`~bot.storage.base.StoreUnavailable` as everywhere else.
"""

from __future__ import annotations

from bot.storage import keys
from bot.storage.agents import AgentRecord, AgentStore
from bot.storage.connect import connection_for
from bot.storage.resp import Connection

# ARGV: name, the generation the stored record must have, the new record's JSON.
# 1 = replaced, 0 = someone changed it first, -1 = no such agent.
_REPLACE = b"""
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return -1 end
if tonumber(cjson.decode(current)['generation']) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class RedisAgentStore(AgentStore):
    def __init__(self, connection: Connection) -> None:
        self._pipe = connection

    @classmethod
    def from_url(
        cls, url: str, *, socket_timeout: float = 5.0, socket_connect_timeout: float = 2.0
    ) -> RedisAgentStore:
        return cls(
            connection_for(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                scripts=(_REPLACE,),
            )
        )

    async def ping(self) -> None:
        await self._pipe.one("PING")

    async def close(self) -> None:
        await self._pipe.close()

    async def create(self, agent: AgentRecord) -> bool:
        created = await self._pipe.one("HSETNX", keys.AGENTS, agent.name, agent.model_dump_json())
        return bool(created)

    async def get(self, name: str) -> AgentRecord | None:
        raw = await self._pipe.one("HGET", keys.AGENTS, name)
        return AgentRecord.model_validate_json(raw) if raw is not None else None

    async def replace(self, agent: AgentRecord) -> bool:
        done = await self._pipe.one(
            "EVAL",
            _REPLACE,
            1,
            keys.AGENTS,
            agent.name,
            agent.generation - 1,
            agent.model_dump_json(),
        )
        return int(done) == 1

    async def all(self) -> list[AgentRecord]:
        flat = await self._pipe.one("HGETALL", keys.AGENTS)
        records = [AgentRecord.model_validate_json(raw) for raw in flat[1::2]]
        return sorted(records, key=lambda a: a.name)

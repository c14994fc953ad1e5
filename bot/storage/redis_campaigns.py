"""Campaigns on Redis (bot.storage.campaigns): every multi-key step one Lua script on one
campaign's keys, all under the hash tag ``{cmp:<id>}`` (one slot). The account → campaigns
index and the global list and names are separate keys, written *before* the step they
index (an extra entry is harmless: it is skipped or repaired by repeating the step)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.campaigns.model import Campaign, CampaignConflict, CampaignNotFound
from bot.storage import keys
from bot.storage.campaigns import Action, CampaignStore, next_state
from bot.storage.redis_codec import as_text, score
from bot.storage.resp import Connection

# KEYS: campaign, members, pending   ARGV: account ids.  -1: no campaign; -2: cancelled.
_ADD = b"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state == 'cancelled' then return -2 end
local added = 0
for i = 1, #ARGV do
  if not redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    redis.call('ZADD', KEYS[2], redis.call('HINCRBY', KEYS[1], 'seq', 1), ARGV[i])
    redis.call('RPUSH', KEYS[3], ARGV[i])
    added = added + 1
  end
end
if added > 0 and state == 'done' then redis.call('HSET', KEYS[1], 'state', 'running') end
return added
"""

# KEYS: campaign, pending, releasing   ARGV: n, now (µs)
_TAKE = b"""
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'scheduled' and state ~= 'running' then return {} end
local ids = redis.call('LPOP', KEYS[2], tonumber(ARGV[1]))
if not ids then return {} end
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[3], ARGV[2], id) end
if state == 'scheduled' then redis.call('HSET', KEYS[1], 'state', 'running') end
return ids
"""

# KEYS: campaign, releasing, released, pending   ARGV: account ids
_MARK = b"""
local moved = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 and redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
    moved = moved + 1
  end
end
if moved > 0 then redis.call('HINCRBY', KEYS[1], 'released', moved) end
if redis.call('HGET', KEYS[1], 'state') == 'running' and redis.call('LLEN', KEYS[4]) == 0
   and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'done')
end
return moved
"""

# KEYS: campaign, pending, releasing   ARGV: state seen, pending seen, releasing seen, new
# state. Compare-and-set: 0 when anything moved since it was read (the caller reads again).
_SET_STATE = b"""
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1]
   or redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[2])
   or redis.call('ZCARD', KEYS[3]) ~= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[4])
if ARGV[4] == 'cancelled' then redis.call('DEL', KEYS[2]) end
return 1
"""

SCRIPTS = (_ADD, _TAKE, _MARK, _SET_STATE)
_FIELDS = ("id", "name", "flow", "start_at", "rate", "state", "created_at")
_COUNTS = ("imported", "rejected", "released")


class RedisCampaigns(CampaignStore):
    def __init__(self, connection: Connection) -> None:
        self._pipe = connection

    def _reads(self, campaign_id: str) -> list[tuple[Any, ...]]:
        return [
            ("HGETALL", keys.campaign(campaign_id)),
            ("LLEN", keys.campaign_pending(campaign_id)),
            ("ZCARD", keys.campaign_releasing(campaign_id)),
        ]

    @staticmethod
    def _campaign(fields: Sequence[bytes], pending: int, releasing: int) -> Campaign | None:
        if not fields:
            return None  # an index entry a crash left before the campaign was written
        data = {as_text(k): as_text(v) for k, v in zip(fields[::2], fields[1::2], strict=True)}
        data.pop("seq", None)
        return Campaign.model_validate({**data, "pending": pending, "releasing": releasing})

    async def create(self, campaign: Campaign) -> Campaign:
        # The campaign and its index entry first, the name last (SET NX: of two creations of
        # one name exactly one wins, and the winner's campaign already exists when the loser
        # looks). A crash before the name leaves a campaign nobody can name: list_all skips it.
        data = campaign.model_dump(mode="json", include=set(_FIELDS) | set(_COUNTS))
        await self._pipe.call(
            ("HSET", keys.campaign(campaign.id), *[x for kv in data.items() for x in kv]),
            ("ZADD", keys.CAMPAIGNS, score(campaign.created_at), campaign.id),
        )
        if not await self._pipe.one("SET", keys.campaign_name(campaign.name), campaign.id, "NX"):
            await self._pipe.call(
                ("ZREM", keys.CAMPAIGNS, campaign.id), ("DEL", keys.campaign(campaign.id))
            )
            raise CampaignConflict(f"a campaign named {campaign.name!r} exists already")
        return campaign

    async def get(self, campaign_id: str) -> Campaign | None:
        if not keys.usable_campaign_id(campaign_id):
            return None
        return self._campaign(*await self._pipe.call(*self._reads(campaign_id)))

    async def _must(self, campaign_id: str) -> Campaign:
        found = await self.get(campaign_id)
        if found is None:
            raise CampaignNotFound(f"no campaign {campaign_id!r}")
        return found

    async def find(self, name: str) -> Campaign | None:
        owner = await self._pipe.one("GET", keys.campaign_name(name))
        found = await self.get(as_text(owner)) if owner is not None else None
        return found if found is not None and found.name == name else None

    async def list_all(self) -> list[Campaign]:
        ids = [as_text(i) for i in await self._pipe.one("ZRANGE", keys.CAMPAIGNS, 0, -1)]
        ids = [i for i in ids if keys.usable_campaign_id(i)]
        if not ids:
            return []
        replies = await self._pipe.call(*(c for i in ids for c in self._reads(i)))
        found = [self._campaign(*replies[k : k + 3]) for k in range(0, len(replies), 3)]
        campaigns = [c for c in found if c is not None]
        if not campaigns:
            return []
        # Only campaigns their name points to: not one a create left half-made (see create).
        owners = await self._pipe.call(*(("GET", keys.campaign_name(c.name)) for c in campaigns))
        return [c for c, o in zip(campaigns, owners, strict=True) if o and as_text(o) == c.id]

    async def add_members(self, campaign_id: str, account_ids: Sequence[str]) -> int:
        if not keys.usable_campaign_id(campaign_id):
            raise CampaignNotFound(f"no campaign {campaign_id!r}")
        if not account_ids:
            return 0
        k = keys.campaign_keys(campaign_id)
        # The account's index first: a crash before the script leaves an entry naming a
        # campaign the account is not in yet (repeating the import adds it).
        index = [("SADD", keys.account_campaigns(a), campaign_id) for a in account_ids]
        *_, added = await self._pipe.call(
            *index, ("EVAL", _ADD, 3, k.campaign, k.members, k.pending, *account_ids)
        )
        if added == -1:
            raise CampaignNotFound(f"no campaign {campaign_id!r}")
        if added == -2:
            raise CampaignConflict(f"campaign {campaign_id} is cancelled")
        return int(added)

    async def count_import(
        self, campaign_id: str, imported: int, rejected: int, *, first: bool = False
    ) -> None:
        await self._must(campaign_id)
        key = keys.campaign(campaign_id)
        await self._pipe.call(
            ("HINCRBY", key, "imported", imported),
            ("HSET", key, "rejected", rejected)
            if first
            else ("HINCRBY", key, "rejected", rejected),
        )

    async def members(self, campaign_id: str, start: int = 0, stop: int = -1) -> list[str]:
        if not keys.usable_campaign_id(campaign_id):
            return []
        found = await self._pipe.one("ZRANGE", keys.campaign_members(campaign_id), start, stop)
        return [as_text(m) for m in found]

    async def campaigns_of(self, account_id: str) -> list[str]:
        if not keys.usable_account_id(account_id):
            return []
        found = await self._pipe.one("SMEMBERS", keys.account_campaigns(account_id))
        return sorted(as_text(m) for m in found)

    async def take_due(self, campaign_id: str, n: int, now: datetime) -> list[str]:
        if n <= 0 or not keys.usable_campaign_id(campaign_id):
            return []
        k = keys.campaign_keys(campaign_id)
        taken = await self._pipe.one(
            "EVAL", _TAKE, 3, k.campaign, k.pending, k.releasing, n, score(now)
        )
        return [as_text(a) for a in taken or []]

    async def stale(self, campaign_id: str, before: datetime) -> list[str]:
        if not keys.usable_campaign_id(campaign_id):
            return []
        key = keys.campaign_releasing(campaign_id)
        found = await self._pipe.one("ZRANGE", key, "-inf", f"({score(before)}", "BYSCORE")
        return [as_text(a) for a in found]

    async def mark_released(self, campaign_id: str, account_ids: Sequence[str]) -> int:
        if not account_ids or not keys.usable_campaign_id(campaign_id):
            return 0
        k = keys.campaign_keys(campaign_id)
        moved = await self._pipe.one(
            "EVAL", _MARK, 4, k.campaign, k.releasing, k.released, k.pending, *account_ids
        )
        return int(moved)

    async def set_state(self, campaign_id: str, action: Action, now: datetime) -> Campaign:
        k = keys.campaign_keys(campaign_id) if keys.usable_campaign_id(campaign_id) else None
        while True:  # compare-and-set: a release or import in between makes it read again
            seen = await self._must(campaign_id)
            assert k is not None
            state = next_state(seen, action, now)
            done = await self._pipe.one(
                "EVAL",
                _SET_STATE,
                3,
                k.campaign,
                k.pending,
                k.releasing,
                seen.state,
                seen.pending,
                seen.releasing,
                state,
            )
            if done:
                return await self._must(campaign_id)

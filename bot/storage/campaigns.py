"""The campaigns' store seam: campaigns, their members and the release of each member.

A member moves ``pending → releasing → released``, each move one atomic step:

- ``take_due`` moves up to n pending ids to ``releasing`` (stamped with the time they were
  taken), only while the campaign may release: of two processes each id goes to one.
- The caller then submits each id's ``start`` event (de-duplicated by the key "start", so a
  second submission changes nothing) and ``mark_released`` moves them on.
- A process that dies between the two leaves ids in ``releasing``: ``stale`` finds those
  taken longer ago than a lease, and the release step submits them again. So a kill -9 at
  any point loses nobody and starts nobody twice.

Cancel drops what is pending, never what was taken (those were, or are being, started).
Every implementation passes one contract suite (tests/service/test_campaign_contract.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bot.campaigns.model import (
    RELEASABLE,
    Campaign,
    CampaignConflict,
    CampaignNotFound,
    State,
)

Action = Literal["pause", "resume", "cancel"]


def next_state(campaign: Campaign, action: Action, now: datetime) -> State:
    """The state ``action`` leads to, or CampaignConflict. One rule for both stores (the
    Redis script is handed the answer for resume and checks the state it saw)."""
    state = campaign.state
    if action == "pause" and state in RELEASABLE:
        return "paused"
    if action == "resume" and state == "paused":
        if campaign.pending == 0 and campaign.releasing == 0:
            return "done"
        return "scheduled" if campaign.start_at > now else "running"
    if action == "cancel" and state in ("scheduled", "running", "paused"):
        return "cancelled"
    if (action == "pause" and state == "paused") or (action == "resume" and state in RELEASABLE):
        return state  # asked twice: nothing to change
    raise CampaignConflict(f"campaign {campaign.name!r} is {state}: cannot {action}")


class CampaignStore(ABC):
    @abstractmethod
    async def create(self, campaign: Campaign) -> Campaign:
        """Stores a new campaign; CampaignConflict when its name is taken."""

    @abstractmethod
    async def get(self, campaign_id: str) -> Campaign | None: ...

    @abstractmethod
    async def find(self, name: str) -> Campaign | None:
        """The campaign of this name."""

    @abstractmethod
    async def list_all(self) -> list[Campaign]:
        """Every campaign, oldest first."""

    @abstractmethod
    async def add_members(self, campaign_id: str, account_ids: Sequence[str]) -> int:
        """Appends the accounts not yet members to the pending list, in order; how many were
        new. A done campaign runs again when some were; a cancelled one refuses
        (CampaignConflict)."""

    @abstractmethod
    async def count_import(
        self, campaign_id: str, imported: int, rejected: int, *, first: bool = False
    ) -> None:
        """Adds ``imported`` new members to the campaign's count, and ``rejected`` to the rows
        the current import refused (``first``: a new import begins, its count replaces the
        last import's: the same file imported twice does not count its bad rows twice)."""

    @abstractmethod
    async def members(self, campaign_id: str, start: int = 0, stop: int = -1) -> list[str]:
        """Member ids in import order (``start`` and ``stop`` inclusive, as LRANGE)."""

    @abstractmethod
    async def campaigns_of(self, account_id: str) -> list[str]:
        """Ids of the campaigns the account is a member of."""

    @abstractmethod
    async def take_due(self, campaign_id: str, n: int, now: datetime) -> list[str]:
        """Moves up to ``n`` pending ids, oldest first, to ``releasing`` (stamped ``now``), only
        while the campaign is scheduled or running (a scheduled one becomes running)."""

    @abstractmethod
    async def stale(self, campaign_id: str, before: datetime) -> list[str]:
        """Ids taken before ``before`` and not marked released (their taker may have died)."""

    @abstractmethod
    async def mark_released(self, campaign_id: str, account_ids: Sequence[str]) -> int:
        """Moves the ids from ``releasing`` to released; how many moved (a repeat moves none).
        A running campaign with nothing pending nor releasing left is done."""

    @abstractmethod
    async def set_state(self, campaign_id: str, action: Action, now: datetime) -> Campaign:
        """Pause, resume or cancel (see next_state); cancel drops the pending ids."""


@dataclass
class _Members:
    campaign: Campaign
    order: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    releasing: dict[str, datetime] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)


class MemoryCampaigns(CampaignStore):
    def __init__(self) -> None:
        self._campaigns: dict[str, _Members] = {}
        self._names: dict[str, str] = {}
        self._of: dict[str, list[str]] = {}

    def _entry(self, campaign_id: str) -> _Members:
        entry = self._campaigns.get(campaign_id)
        if entry is None:
            raise CampaignNotFound(f"no campaign {campaign_id!r}")
        return entry

    def _view(self, e: _Members) -> Campaign:
        return e.campaign.model_copy(
            update={"pending": len(e.pending), "releasing": len(e.releasing)}
        )

    def _set(self, e: _Members, **changes: object) -> None:
        e.campaign = e.campaign.model_copy(update=changes)

    async def create(self, campaign: Campaign) -> Campaign:
        if campaign.name in self._names:
            raise CampaignConflict(f"a campaign named {campaign.name!r} exists already")
        self._names[campaign.name] = campaign.id
        self._campaigns[campaign.id] = _Members(campaign)
        return campaign

    async def get(self, campaign_id: str) -> Campaign | None:
        e = self._campaigns.get(campaign_id)
        return self._view(e) if e else None

    async def find(self, name: str) -> Campaign | None:
        found = self._names.get(name)
        return await self.get(found) if found else None

    async def list_all(self) -> list[Campaign]:
        return [self._view(e) for e in self._campaigns.values()]

    async def add_members(self, campaign_id: str, account_ids: Sequence[str]) -> int:
        e = self._entry(campaign_id)
        if e.campaign.state == "cancelled":
            raise CampaignConflict(f"campaign {e.campaign.name!r} is cancelled")
        known = set(e.order)
        added = 0
        for a in account_ids:
            if a not in known:
                known.add(a)
                e.order.append(a)
                e.pending.append(a)
                self._of.setdefault(a, []).append(campaign_id)
                added += 1
        if added and e.campaign.state == "done":
            self._set(e, state="running")
        return added

    async def count_import(
        self, campaign_id: str, imported: int, rejected: int, *, first: bool = False
    ) -> None:
        e = self._entry(campaign_id)
        c = e.campaign
        before = 0 if first else c.rejected
        self._set(e, imported=c.imported + imported, rejected=before + rejected)

    async def members(self, campaign_id: str, start: int = 0, stop: int = -1) -> list[str]:
        e = self._campaigns.get(campaign_id)
        order = e.order if e else []
        return order[start : None if stop == -1 else stop + 1]

    async def campaigns_of(self, account_id: str) -> list[str]:
        return list(self._of.get(account_id, []))

    async def take_due(self, campaign_id: str, n: int, now: datetime) -> list[str]:
        e = self._campaigns.get(campaign_id)
        if e is None or n <= 0 or e.campaign.state not in RELEASABLE:
            return []
        taken, e.pending = e.pending[:n], e.pending[n:]
        for a in taken:
            e.releasing[a] = now
        if e.campaign.state == "scheduled":
            self._set(e, state="running")
        return taken

    async def stale(self, campaign_id: str, before: datetime) -> list[str]:
        e = self._campaigns.get(campaign_id)
        if e is None:
            return []
        return [a for a, at in e.releasing.items() if at < before]

    async def mark_released(self, campaign_id: str, account_ids: Sequence[str]) -> int:
        e = self._entry(campaign_id)
        moved = 0
        for a in account_ids:
            if e.releasing.pop(a, None) is not None and a not in e.released:
                e.released.add(a)
                moved += 1
        self._set(e, released=e.campaign.released + moved)
        if e.campaign.state == "running" and not e.pending and not e.releasing:
            self._set(e, state="done")
        return moved

    async def set_state(self, campaign_id: str, action: Action, now: datetime) -> Campaign:
        e = self._entry(campaign_id)
        state = next_state(self._view(e), action, now)
        if state == "cancelled":
            e.pending = []
        self._set(e, state=state)
        return self._view(e)

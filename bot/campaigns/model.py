"""A campaign: accounts imported from a lender's file, released at ``rate`` per second from
``start_at`` into the pipeline (each as a ``start`` event, so every first reminder passes the
same compliance gate as any other message)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bot.ids import new_id
from common.errors import SmsbotError

State = Literal["scheduled", "running", "paused", "cancelled", "done"]
# What release_due may take from: a scheduled campaign becomes running on its first release.
RELEASABLE: frozenset[State] = frozenset({"scheduled", "running"})
# The release pace into the queues, not the carrier's: every send still passes the outbound
# pipeline's per-provider rate limit. 1,000/s made one campaign of 1,000,000 take 16.7 min
# whatever the machine (issue 12 asks for 10 min); 10,000/s leaves the pace to the process.
MAX_RATE = 10_000.0
# Lenders' files, --start-at without an offset and the reports' times: Beijing time.
BEIJING = ZoneInfo("Asia/Shanghai")


class Campaign(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_id, pattern=r"^[0-9a-f]{1,64}$")
    name: str = Field(min_length=1, max_length=80)
    flow: str = Field(min_length=1, max_length=64)
    start_at: AwareDatetime
    rate: float = Field(gt=0, le=MAX_RATE)  # accounts released per second
    state: State = "scheduled"
    created_at: AwareDatetime
    imported: int = 0  # members (an account imported twice counts once)
    rejected: int = 0  # rows the latest import refused (its errors file lists them)
    released: int = 0  # accounts whose start event was submitted
    # Read with the campaign, never written from here: the store counts its lists.
    pending: int = 0  # members not taken for release yet
    releasing: int = 0  # taken, their start event not yet confirmed submitted


class CampaignError(SmsbotError):
    """A campaign request that cannot be done (unknown campaign, a taken name, a bad move)."""


class CampaignNotFound(CampaignError):
    pass


class CampaignConflict(CampaignError):
    """The campaign's state does not allow this (e.g. resuming a cancelled campaign)."""


def is_due(campaign: Campaign, now: datetime) -> bool:
    return campaign.state in RELEASABLE and campaign.start_at <= now

"""What became of a campaign's accounts: counts per stage (``status``) and one row per account
(``bot.campaigns.export``), both from one reading of each member.

Read from the members' own data, not from counters kept on the side: the conversation
(state, promise, payments), the outbound records (where the latest message is), the audit
(replies and what they meant, the gate's reasons), the suppression list and the desk's
cases. Members are read a batch at a time with ``Store.account_facts`` (two round trips a
batch on Redis: bot.storage.redis_reports).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ValidationError

from bot.campaigns.model import Campaign
from bot.outbound.record import OutboundRecord
from bot.records import AccountRecord
from bot.storage.base import AccountFacts, Store
from dialogs import conversation as c

READ_BATCH = 500  # members read at once
# Where an account's latest message is, as the status counts it.
STAGES = {
    "queued": "queued",
    "reserved": "queued",
    "sending": "queued",
    "deferred": "deferred",
    "blocked": "blocked",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "unknown": "failed",
}


@dataclass(frozen=True)
class Member:
    """One member as the status and the export read it."""

    id: str
    account: AccountRecord | None
    conversation: c.Conversation | None
    last: OutboundRecord | None  # the latest message that was not superseded
    rules: tuple[str, ...]  # the gate's rules when the latest message was deferred or blocked
    intents: tuple[str, ...]  # what each reply meant, oldest first
    last_reply_at: datetime | None  # when the latest reply was understood
    opted_out: bool
    handed_off: bool  # a case was opened for the account (open or resolved)

    @property
    def stage(self) -> str | None:
        return STAGES.get(self.last.state) if self.last else None


class CampaignStatus(BaseModel):
    campaign: Campaign
    imported: int  # members
    rejected: int
    pending: int  # not released yet
    releasing: int
    released: int
    cancelled: int  # members a cancel left unreleased: never started by this campaign
    queued: int  # the latest message is waiting for the gate or a carrier
    deferred: int
    deferred_reasons: dict[str, int]  # the gate's rule id -> accounts deferred by it
    blocked: int
    blocked_reasons: dict[str, int]
    sent: int
    delivered: int
    failed: int
    replied: int
    replies_by_intent: dict[str, int]
    promised: int
    paid: int
    recovered: Decimal  # the sum of what was paid
    overpaid: int  # accounts that paid more than was due (a refund may be owed)
    opted_out: int
    handed_off: int


def _conversation(raw: str | None) -> c.Conversation | None:
    if raw is None:
        return None
    try:
        return c.Conversation.model_validate_json(raw)
    except ValidationError:
        return None  # a report must not fail on one damaged conversation


def _member(account_id: str, facts: AccountFacts) -> Member:
    live = [r for r in facts.records if r.state != "superseded"]
    last = live[-1] if live else None
    rules: tuple[str, ...] = ()
    if last is not None and last.state in ("deferred", "blocked"):
        for e in reversed(facts.audit):
            if e.kind == "gate" and e.detail.get("message_id") == last.id:
                rules = tuple(e.detail.get("rules") or ())
                break
    understood = [e for e in facts.audit if e.kind == "understood"]
    intents = tuple(str(e.detail.get("intent")) for e in understood)
    return Member(
        id=account_id,
        account=facts.account,
        conversation=_conversation(facts.conversation),
        last=last,
        rules=rules,
        intents=intents,
        last_reply_at=understood[-1].at if understood else None,
        opted_out=facts.opted_out,
        handed_off=facts.handed_off,
    )


async def read_members(store: Store, campaign_id: str) -> AsyncIterator[Member]:
    """Every member in import order, read a batch at a time."""
    start = 0
    while True:
        ids = await store.campaigns.members(campaign_id, start, start + READ_BATCH - 1)
        if not ids:
            return
        for a, facts in zip(ids, await store.account_facts(ids), strict=True):
            yield _member(a, facts)
        start += READ_BATCH


async def status(store: Store, campaign: Campaign) -> CampaignStatus:
    stages: Counter[str] = Counter()
    deferred: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    intents: Counter[str] = Counter()
    members = replied = promised = paid = overpaid = opted_out = handed_off = 0
    recovered = Decimal(0)
    async for m in read_members(store, campaign.id):
        members += 1
        if m.stage:
            stages[m.stage] += 1
        if m.stage == "deferred":
            deferred.update(m.rules)
        if m.stage == "blocked":
            blocked.update(m.rules)
        if m.intents:
            replied += 1
            intents.update(m.intents)
        conv = m.conversation
        promised += conv is not None and conv.promise is not None
        if conv is not None and conv.paid_total > 0:
            paid += 1
            recovered += conv.paid_total
            overpaid += conv.paid_total > conv.account.amount_due
        opted_out += m.opted_out
        handed_off += m.handed_off
    return CampaignStatus(
        campaign=campaign,
        imported=members,
        rejected=campaign.rejected,
        pending=campaign.pending,
        releasing=campaign.releasing,
        released=campaign.released,
        cancelled=(
            max(0, members - campaign.released - campaign.releasing - campaign.pending)
            if campaign.state == "cancelled"
            else 0
        ),
        queued=stages["queued"],
        deferred=stages["deferred"],
        deferred_reasons=dict(deferred),
        blocked=stages["blocked"],
        blocked_reasons=dict(blocked),
        sent=stages["sent"],
        delivered=stages["delivered"],
        failed=stages["failed"],
        replied=replied,
        replies_by_intent=dict(intents),
        promised=promised,
        paid=paid,
        recovered=recovered,
        overpaid=overpaid,
        opted_out=opted_out,
        handed_off=handed_off,
    )

"""The dashboard's figures: one pydantic model for the page, the JSON API, the CSV and the
standalone report."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

MAX_DAYS = 366  # one request reads every account once; a longer range is a different report


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Funnel(_Model):
    """Accounts that reached each stage within the range (each account once per stage)."""

    reminded: int = 0  # a proactive message left (sent) for the account
    delivered: int = 0  # a proactive message was reported delivered
    replied: int = 0  # the borrower answered (what it meant: ``IntentDay``)
    promised: int = 0  # the conversation entered ``promised`` (the bot's or an agent's)
    paid: int = 0  # a payment arrived
    recovered: Decimal = Decimal(0)  # the sum of those payments


class DayFunnel(Funnel):
    day: dt.date  # Beijing date


class CampaignFunnel(Funnel):
    campaign: str | None  # the campaign's id; None: accounts in no campaign
    name: str


class IntentDay(_Model):
    day: dt.date
    intents: dict[str, int]  # what the replies of that day meant -> replies


class Rates(_Model):
    promises_made: int
    promises_kept: int  # a payment arrived while promised
    promises_broken: int  # the promise's day passed without one
    promise_kept_rate: float | None  # kept / (kept + broken); None before any outcome
    opted_out: int  # accounts that stopped (the flow's opted_out state)
    opt_out_rate: float | None  # opted_out / reminded
    complaints: int  # accounts that disputed the debt or were abusive
    complaint_rate: float | None  # complaints / reminded


class Handoffs(_Model):
    opened: int
    by_reason: dict[str, int]
    sla_met: int  # claimed (or resolved) before the reason's SLA ran out
    sla_missed: int  # claimed later, or still waiting past it
    sla_pending: int  # still waiting, SLA not yet passed


class TemplateRow(_Model):
    template: str
    sent: int  # messages of this template that left
    replied: int  # of those, followed by a reply before the next message (last touch)
    paid: int  # of those, followed by a payment before the next message
    reply_rate: float
    payment_rate: float


class GateCounts(_Model):
    blocked: dict[str, int]  # rule id -> messages blocked by it
    deferred: dict[str, int]  # rule id -> gate verdicts that deferred a message


class Dashboard(_Model):
    start: dt.date  # the first Beijing date of the range (query ``from``)
    end: dt.date  # the last one, included (query ``to``)
    campaign: str | None  # the campaign's id when one was chosen
    campaign_name: str | None
    generated_at: dt.datetime
    accounts: int  # accounts read
    funnel: Funnel
    days: list[DayFunnel]  # every day of the range, oldest first
    campaigns: list[CampaignFunnel]
    intents: list[IntentDay]  # every day of the range
    rates: Rates
    handoffs: Handoffs
    templates: list[TemplateRow]  # most sent first
    gate: GateCounts

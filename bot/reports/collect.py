"""The dashboard's figures over a range of Beijing dates, read from what the store keeps — no
counters on the side, so a report can be asked for any past range:

- outbound records (``Store.outbound_records``): reminders that left, their template, delivery;
- the audit (``Store.read_audit``): ``understood`` (a reply and its intent), ``step`` (the
  flow entering ``promised`` or ``opted_out``, a promise kept by a payment or broken by its
  timeout), ``payment`` (amount), ``gate`` (a block or a deferral and its rule ids);
- the desk's cases (``store.desk``): handoffs, their reason and SLA;
- campaign membership (``store.campaigns``): which campaign an account's figures go to.

Each account is read once, members a batch at a time as the campaign status does
(``bot.campaigns.status.READ_BATCH``), the reads of a batch issued together.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from bot.campaigns.model import Campaign
from bot.campaigns.status import READ_BATCH
from bot.desk.case import Case
from bot.outbound.record import OutboundRecord
from bot.records import AuditEntry
from bot.reports.model import (
    MAX_DAYS,
    CampaignFunnel,
    Dashboard,
    DayFunnel,
    Funnel,
    GateCounts,
    Handoffs,
    IntentDay,
    Rates,
    TemplateRow,
)
from bot.storage.base import Store
from common.errors import UsageError

BEIJING = ZoneInfo("Asia/Shanghai")
DEFAULT_DAYS = 14
COMPLAINTS = frozenset({"dispute", "abuse"})
STAGES = ("reminded", "delivered", "replied", "promised", "paid")
AUDIT_LIMIT = 5000  # an account's history read for a report (a long conversation is ~200)


def day_of(at: dt.datetime) -> dt.date:
    return at.astimezone(BEIJING).date()


def parse_range(start: str | None, end: str | None, now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The range a request asks for: ISO dates, both included; by default the last
    ``DEFAULT_DAYS`` Beijing days up to today. UsageError (a 400) names what is wrong."""

    def parse(name: str, text: str) -> dt.date:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise UsageError(f"{name}: not a date (YYYY-MM-DD): {text[:40]!r}") from None

    last = parse("to", end) if end else day_of(now)
    first = parse("from", start) if start else last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise UsageError(f"from ({first}) is after to ({last})")
    if (last - first).days + 1 > MAX_DAYS:
        raise UsageError(f"at most {MAX_DAYS} days at once (asked {(last - first).days + 1})")
    return first, last


@dataclass
class _Stage:
    """When each account first reached a stage in the range."""

    first: dict[str, dt.date] = field(default_factory=dict)

    def mark(self, account_id: str, day: dt.date) -> None:
        if account_id not in self.first or day < self.first[account_id]:
            self.first[account_id] = day


@dataclass
class _Tally:
    start: dt.date
    end: dt.date
    now: dt.datetime
    stages: dict[str, _Stage] = field(default_factory=lambda: {s: _Stage() for s in STAGES})
    paid_by_day: dict[dt.date, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    paid_by_account: dict[str, Decimal] = field(default_factory=dict)
    home: dict[str, str | None] = field(default_factory=dict)  # account -> its campaign
    intents: dict[dt.date, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    made = kept = broken = 0
    opted_out: set[str] = field(default_factory=set)
    complained: set[str] = field(default_factory=set)
    reasons: Counter[str] = field(default_factory=Counter)
    sla: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    replied: Counter[str] = field(default_factory=Counter)
    paid: Counter[str] = field(default_factory=Counter)
    blocked: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)

    def within(self, at: dt.datetime) -> dt.date | None:
        day = day_of(at)
        return day if self.start <= day <= self.end else None

    def account(
        self,
        account_id: str,
        records: list[OutboundRecord],
        audit: list[AuditEntry],
        cases: Iterable[Case],
        campaign: str | None,
    ) -> None:
        self.home[account_id] = campaign
        left = sorted((r for r in records if r.sent_at is not None), key=lambda r: r.sent_at)  # type: ignore[arg-type,return-value]
        for r in left:
            assert r.sent_at is not None
            day = self.within(r.sent_at)
            if day is not None:
                self.sent[r.message.template] += 1
                if r.message.kind == "proactive":
                    self.stages["reminded"].mark(account_id, day)
            if r.state == "delivered" and r.message.kind == "proactive":
                got = self.within(r.final_at or r.sent_at)
                if got is not None:
                    self.stages["delivered"].mark(account_id, got)
        touched: set[tuple[str, str]] = set()  # (message id, what followed it)
        for e in audit:
            day = self.within(e.at)
            if day is None:
                continue
            self._entry(account_id, e, day, left, touched)
        for case in cases:
            self._case(case)

    def _entry(
        self,
        account_id: str,
        e: AuditEntry,
        day: dt.date,
        left: list[OutboundRecord],
        touched: set[tuple[str, str]],
    ) -> None:
        d = e.detail
        if e.kind == "understood":
            intent = str(d.get("intent"))
            self.stages["replied"].mark(account_id, day)
            self.intents[day][intent] += 1
            if intent in COMPLAINTS:
                self.complained.add(account_id)
            self._last_touch(e.at, left, "replied", touched)
        elif e.kind == "payment":
            try:
                amount = Decimal(str(d.get("amount")))
            except InvalidOperation:
                return  # a damaged entry must not fail a report
            self.stages["paid"].mark(account_id, day)
            self.paid_by_day[day] = self.paid_by_day.get(day, Decimal(0)) + amount
            self.paid_by_account[account_id] = (
                self.paid_by_account.get(account_id, Decimal(0)) + amount
            )
            self._last_touch(e.at, left, "paid", touched)
        elif e.kind == "step":
            before, after, event = d.get("before"), d.get("after"), str(d.get("event", ""))
            if after == "promised" and before != "promised":
                self.made += 1
                self.stages["promised"].mark(account_id, day)
            if before == "promised" and event.startswith("payment"):
                self.kept += 1
            elif before == "promised" and event == "timer timeout fired" and after != before:
                self.broken += 1
            if after == "opted_out" and before != "opted_out":
                self.opted_out.add(account_id)
        elif e.kind == "gate" and d.get("verdict") in ("block", "defer"):
            into = self.blocked if d["verdict"] == "block" else self.deferred
            into.update(str(r) for r in d.get("rules") or ["(none)"])

    def _last_touch(
        self, at: dt.datetime, left: list[OutboundRecord], what: str, touched: set[tuple[str, str]]
    ) -> None:
        """Credits the latest message that left before ``at`` (once per message); strictly
        before: the bot's answer to this reply left with it, in the same instant or later."""
        last = None
        for r in left:
            if r.sent_at is not None and r.sent_at < at:
                last = r
        if last is None or (last.id, what) in touched:
            return
        touched.add((last.id, what))
        (self.replied if what == "replied" else self.paid)[last.message.template] += 1

    def _case(self, case: Case) -> None:
        if self.within(case.opened_at) is None:
            return
        self.reasons[case.reason] += 1
        taken = case.claimed_at or case.resolved_at
        if taken is not None:
            self.sla["met" if taken <= case.sla_due else "missed"] += 1
        elif case.expired_at is not None or case.sla_due <= self.now:
            self.sla["missed"] += 1
        else:
            self.sla["pending"] += 1

    def funnel_of(self, accounts: set[str] | None, day: dt.date | None = None) -> Funnel:
        def n(stage: str) -> int:
            return sum(
                1
                for a, d in self.stages[stage].first.items()
                if (accounts is None or a in accounts) and (day is None or d == day)
            )

        recovered: Decimal
        if day is not None:
            recovered = self.paid_by_day.get(day, Decimal(0))
        else:
            recovered = sum(
                (v for a, v in self.paid_by_account.items() if accounts is None or a in accounts),
                Decimal(0),
            )
        return Funnel(**{s: n(s) for s in STAGES}, recovered=recovered)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def _read(
    store: Store, account_id: str, only: str | None
) -> tuple[list[OutboundRecord], list[AuditEntry], list[Case], str | None]:
    records, audit, case, closed, campaigns = await asyncio.gather(
        store.outbound_records(account_id),
        store.read_audit(account_id, limit=AUDIT_LIMIT),
        store.desk.case(account_id),
        store.desk.closed_cases(account_id, limit=100),
        store.campaigns.campaigns_of(account_id) if only is None else _just(only),
    )
    cases = [*closed, *([case] if case is not None else [])]
    return records, audit, cases, (campaigns[0] if campaigns else None)


async def _just(campaign_id: str) -> list[str]:
    return [campaign_id]


async def _account_ids(store: Store, campaign: Campaign | None) -> list[str]:
    if campaign is None:
        return sorted(await store.account_ids())
    return await store.campaigns.members(campaign.id)


async def dashboard(
    store: Store,
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    campaign: Campaign | None = None,
) -> Dashboard:
    """The figures of ``start``..``end`` (Beijing dates, both included), of every account or
    of one campaign's members. An account in several campaigns counts for the first."""
    tally = _Tally(start, end, now)
    ids = await _account_ids(store, campaign)
    only = campaign.id if campaign is not None else None
    for i in range(0, len(ids), READ_BATCH):
        batch = ids[i : i + READ_BATCH]
        read = await asyncio.gather(*(_read(store, a, only) for a in batch))
        for a, facts in zip(batch, read, strict=True):
            tally.account(a, *facts)
    days = [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]
    names = {k.id: k.name for k in await store.campaigns.list_all()}
    groups: dict[str | None, set[str]] = defaultdict(set)
    for a, home in tally.home.items():
        groups[home].add(a)
    total = tally.funnel_of(None)
    reminded = total.reminded
    return Dashboard(
        start=start,
        end=end,
        campaign=campaign.id if campaign else None,
        campaign_name=campaign.name if campaign else None,
        generated_at=now,
        accounts=len(ids),
        funnel=total,
        days=[DayFunnel(day=d, **tally.funnel_of(None, d).model_dump()) for d in days],
        campaigns=[
            CampaignFunnel(
                campaign=k,
                name=names.get(k, k) if k is not None else "（无活动 no campaign）",
                **tally.funnel_of(members).model_dump(),
            )
            for k, members in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ],
        intents=[IntentDay(day=d, intents=dict(tally.intents.get(d, {}))) for d in days],
        rates=Rates(
            promises_made=tally.made,
            promises_kept=tally.kept,
            promises_broken=tally.broken,
            promise_kept_rate=_rate(tally.kept, tally.kept + tally.broken),
            opted_out=len(tally.opted_out),
            opt_out_rate=_rate(len(tally.opted_out), reminded),
            complaints=len(tally.complained),
            complaint_rate=_rate(len(tally.complained), reminded),
        ),
        handoffs=Handoffs(
            opened=sum(tally.reasons.values()),
            by_reason=dict(tally.reasons.most_common()),
            sla_met=tally.sla["met"],
            sla_missed=tally.sla["missed"],
            sla_pending=tally.sla["pending"],
        ),
        templates=[
            TemplateRow(
                template=t,
                sent=n,
                replied=tally.replied[t],
                paid=tally.paid[t],
                reply_rate=round(tally.replied[t] / n, 4),
                payment_rate=round(tally.paid[t] / n, 4),
            )
            for t, n in tally.sent.most_common()
        ],
        gate=GateCounts(
            blocked=dict(tally.blocked.most_common()),
            deferred=dict(tally.deferred.most_common()),
        ),
    )


async def find_campaign(store: Store, ref: str) -> Campaign:
    """A campaign by id or by its unique name (as ``smsbot campaign`` takes it)."""
    found = await store.campaigns.get(ref) or await store.campaigns.find(ref)
    if found is None:
        raise UsageError(f"campaign: no campaign with id or name {ref[:80]!r}")
    return found

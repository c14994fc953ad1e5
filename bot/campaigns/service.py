"""Campaigns as the service runs them: one :class:`Campaigns` per process (like bot.desk's
Desk), built in the pipeline's context; the CLI and the API call it.

Release: every ``campaign_release_interval_s`` the pipeline's background loop calls
:meth:`Campaigns.release_due`. For each due campaign it takes tokens of the campaign's own
bucket (``Store.take_tokens``, shared by every process, so N processes together still release
at ``rate``), takes that many pending members (``take_due``: each to one process) and submits
each one's ``start`` event through ``Pipeline.submit`` with the de-duplication key "start":
the first reminder is an ordinary message of the flow, so the compliance gate decides it
(quiet hours, caps, opt-outs, holds), and an account in two campaigns, or imported twice, is
started once. Taken members are marked released only after their submission; members a dead
process took are re-submitted once their lease has run out (bot.storage.campaigns).

Backlog guard: a rate above what the process gates would release into ever longer queues —
one waiting drain per account, in memory. A round releases only while fewer than
``max_backlog`` accounts wait for this process's drains; the bucket keeps the rest of its
tokens, so the release follows the gate's pace. Measured (bench/campaign.py, 1,000,000 at
2,500/s): without it up to 170,000 accounts waited at once, 599 µs of CPU per account, peak RSS
874 MiB, 10.3 min; with it 548 µs, 648 MiB, 9.6 min.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from bot.campaigns.export import export
from bot.campaigns.model import BEIJING, Campaign, CampaignConflict, CampaignNotFound, is_due
from bot.campaigns.rows import RowError
from bot.campaigns.status import CampaignStatus, status
from bot.clock import Clock
from bot.desk.unmatched import Submit
from bot.records import AccountRecord, QueuedEvent, shared_phone
from bot.storage.base import Store, StoreUnavailable
from bot.storage.campaigns import Action
from common.errors import SmsbotError
from dialogs.registry import Registry

log = logging.getLogger(__name__)

# Members taken but not confirmed released this long ago are re-submitted: far longer than a
# submission takes (one enqueue per member), so a live process is never overtaken.
RELEASE_LEASE = timedelta(seconds=30)
# Accounts waiting for this process's drains above which a round releases nobody: about 5 s
# of gating, so the gate never waits for the next round (once a second).
MAX_BACKLOG = 10_000
IMPORT_BATCH = 500  # accounts upserted at once (one pipelined write on Redis)
MAX_ERRORS_SHOWN = 100


Row = tuple[int, AccountRecord | RowError]


class ImportReport(BaseModel):
    campaign_id: str
    imported: int  # rows taken (accounts created or updated)
    added: int  # of those, accounts new to the campaign
    rejected: int
    errors: list[str]  # the first MAX_ERRORS_SHOWN rejected rows, as "row N: field: why"
    # Rows whose phone is another account's (one borrower may have two loans): taken, but a
    # reply from that phone now reaches the account imported last, as POST /api/accounts says.
    shared_phones: int = 0
    # Accounts the store had with other values (a changed amount): updated, and their
    # conversations quote the new values from their next event on.
    updated: int = 0
    # Rows whose 逾期天数 disagrees with their 到期日 by more than a day: messages count the
    # days from the due date, so the file's figure is not what the borrower reads.
    days_mismatch: int = 0
    warnings: list[str] = []  # the first MAX_ERRORS_SHOWN of them, as "row N: ..."


async def _rows(rows: Iterable[Row] | AsyncIterable[Row]) -> AsyncIterator[Row]:
    if isinstance(rows, AsyncIterable):
        async for r in rows:
            yield r
    else:
        for r in rows:
            yield r


class Campaigns:
    def __init__(
        self,
        store: Store,
        submit: Submit,
        registry: Registry,
        clock: Clock,
        *,
        interval_s: float = 1.0,
        backlog: Callable[[], int] = lambda: 0,
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self.store = store
        self.submit = submit
        self.registry = registry
        self.clock = clock
        self.interval_s = interval_s  # how often release_due runs: a bucket holds that much
        self.backlog = backlog  # accounts waiting for this process's drains (the guard)
        self.max_backlog = max_backlog

    # --- campaigns ----------------------------------------------------------------------

    async def create(
        self, name: str, flow: str, start_at: datetime | None = None, rate: float = 10.0
    ) -> Campaign:
        self.registry.get(flow)  # an unknown flow is refused now, naming the loaded ones
        now = self.clock.now()
        campaign = Campaign(
            name=name, flow=flow, start_at=start_at or now, rate=rate, created_at=now
        )
        return await self.store.campaigns.create(campaign)

    async def get(self, ref: str) -> Campaign:
        """By id or by its unique name."""
        found = await self.store.campaigns.get(ref) or await self.store.campaigns.find(ref)
        if found is None:
            raise CampaignNotFound(f"no campaign with id or name {ref!r}")
        return found

    async def list_all(self) -> list[Campaign]:
        return await self.store.campaigns.list_all()

    async def pause(self, ref: str) -> Campaign:
        return await self._move(ref, "pause")

    async def resume(self, ref: str) -> Campaign:
        return await self._move(ref, "resume")

    async def cancel(self, ref: str) -> Campaign:
        return await self._move(ref, "cancel")

    async def _move(self, ref: str, action: Action) -> Campaign:
        campaign = await self.get(ref)
        return await self.store.campaigns.set_state(campaign.id, action, self.clock.now())

    async def status(self, ref: str) -> CampaignStatus:
        return await status(self.store, await self.get(ref))

    async def export(self, ref: str, path: Path) -> int:
        """One row per member to ``path`` (.csv or .xlsx); how many rows."""
        return await export(self.store, (await self.get(ref)).id, path)

    # --- import -------------------------------------------------------------------------

    async def import_rows(
        self,
        ref: str,
        rows: Iterable[Row] | AsyncIterable[Row],
        on_error: Callable[[RowError], None] | None = None,
    ) -> ImportReport:
        """Upserts each account (a changed amount updates it) and adds it to the campaign.
        Idempotent: a second import of the same rows adds nobody and starts nobody again.
        Each batch's accounts are written before their membership, so a crash mid-import
        leaves accounts that the same import, repeated, adds."""
        campaign = await self.get(ref)
        if campaign.state == "cancelled":
            raise CampaignConflict(f"campaign {campaign.name!r} is cancelled")
        imported = added = rejected = shared = updated = mismatched = 0
        today = self.clock.now().astimezone(BEIJING).date()
        errors: list[str] = []
        warnings: list[str] = []
        batch: dict[str, tuple[int, AccountRecord]] = {}
        phones: dict[str, str] = {}  # phone -> the account of this file that has it, so far
        bad = 0
        first = True  # the first count of this import replaces the last import's refusals

        async def flush() -> None:
            nonlocal imported, added, bad, shared, first, updated, mismatched
            rows_ = list(batch.values())
            accounts = [a for _, a in rows_]
            batch.clear()
            owners, before = await asyncio.gather(
                asyncio.gather(*(self.store.find_account(a.phone) for a in accounts)),
                asyncio.gather(*(self.store.get_account(a.id) for a in accounts)),
            )
            updated += sum(
                old is not None and old != a for old, a in zip(before, accounts, strict=True)
            )
            for (row, account), owner in zip(rows_, owners, strict=True):
                said: list[str] = []
                since_due = (today - account.due_date).days
                if abs(since_due - account.days_overdue) > 1:  # a file written yesterday: ±1
                    mismatched += 1
                    said.append(
                        f"days_overdue {account.days_overdue} but due_date {account.due_date}"
                        f" was {since_due} days ago: messages count from the due date"
                    )
                other = phones.get(account.phone) or owner
                phones[account.phone] = account.id
                if other is not None and other != account.id:
                    shared += 1
                    said.append(shared_phone(account.phone, other, account.id))
                room = max(MAX_ERRORS_SHOWN - len(warnings), 0)
                warnings.extend([f"row {row}: {w}" for w in said][:room])
            await asyncio.gather(*(self.store.upsert_account(a) for a in accounts))
            new = await self.store.campaigns.add_members(campaign.id, [a.id for a in accounts])
            await self.store.campaigns.count_import(campaign.id, new, bad, first=first)
            imported, added, bad, first = imported + len(accounts), added + new, 0, False

        async for row, item in _rows(rows):
            if isinstance(item, AccountRecord):
                # The campaign's flow: its start event starts that flow's conversation.
                account = (
                    item
                    if item.flow == campaign.flow
                    else item.model_copy(update={"flow": campaign.flow})
                )
                batch.pop(account.id, None)  # a repeated id: its last row counts, in its place
                batch[account.id] = (row, account)
                if len(batch) >= IMPORT_BATCH:
                    await flush()
            else:
                rejected += 1
                bad += 1
                if len(errors) < MAX_ERRORS_SHOWN:
                    errors.append(str(item))
                if on_error is not None:
                    on_error(item)
        await flush()
        return ImportReport(
            campaign_id=campaign.id,
            imported=imported,
            added=added,
            rejected=rejected,
            errors=errors,
            shared_phones=shared,
            updated=updated,
            days_mismatch=mismatched,
            warnings=warnings,
        )

    # --- release ------------------------------------------------------------------------

    async def release_due(self, now: datetime | None = None) -> int:
        """One release round (the pipeline's loop): how many members were released."""
        now = now or self.clock.now()
        released = 0
        for campaign in await self.store.campaigns.list_all():
            try:
                released += await self._release(campaign, now)
            except StoreUnavailable:
                raise
            except SmsbotError as exc:  # one campaign's trouble does not stop the others
                log.warning("campaign %s: release failed: %s", campaign.id, exc)
        return released

    async def _release(self, campaign: Campaign, now: datetime) -> int:
        released = 0
        if campaign.releasing:  # whatever the state now: these were taken
            stale = await self.store.campaigns.stale(campaign.id, now - RELEASE_LEASE)
            released += await self._start(campaign, stale, now)
        if is_due(campaign, now) and campaign.pending:
            n = await self._tokens(campaign, now)
            taken = await self.store.campaigns.take_due(campaign.id, n, now)
            released += await self._start(campaign, taken, now)
        return released

    def burst(self, campaign: Campaign) -> int:
        """What one round may release: the rate over two intervals (at least one). A round
        starts an interval after the previous one *ended*, so rounds are further apart than
        the interval; a bucket of one interval lost what refilled meanwhile (measured: 765/s
        released at a rate of 1,000/s, bench/campaign.py). The average stays the rate."""
        return max(1, math.ceil(campaign.rate * self.interval_s * 2))

    async def _tokens(self, campaign: Campaign, now: datetime) -> int:
        room = self.max_backlog - self.backlog()
        if room <= 0:
            return 0  # the guard (module docstring): the tokens stay in the bucket
        want = min(self.burst(campaign), campaign.pending, room)
        bucket = f"campaign:{campaign.id}"
        return await self.store.take_up_to(bucket, campaign.rate, self.burst(campaign), want, now)

    async def _start(self, campaign: Campaign, account_ids: list[str], now: datetime) -> int:
        if not account_ids:
            return 0
        # Submitted first, marked after: a crash in between leaves them to be submitted
        # again, which the "start" de-duplication key makes harmless.
        await asyncio.gather(
            *(self.submit(a, QueuedEvent(kind="start", at=now), "start") for a in account_ids)
        )
        return await self.store.campaigns.mark_released(campaign.id, account_ids)

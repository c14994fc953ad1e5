"""Campaigns end to end on each store (memory, Redis): start time, pace, pause, resume,
cancel, de-duplicated starts, the compliance gate on released reminders, re-import, and the
release step's crash recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.campaigns.rows import RowError
from bot.storage.base import Store
from intents import Understander
from tests.service.campaignhelpers import later, rows, service

pytestmark = pytest.mark.timeout(60)
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Wednesday


async def test_a_future_campaign_releases_nothing_before_its_start(
    nlu: Understander, store: Store
) -> None:
    async with service(nlu, store, DAY) as s:
        start = DAY + timedelta(hours=1)
        c = await s.campaigns.create("later", "collections", start, rate=10)
        report = await s.campaigns.import_rows(c.id, rows(1, 2, 3))
        assert (report.imported, report.added, report.rejected) == (3, 3, 0)
        assert await s.release() == 0
        later(s.clock, 3599)
        assert await s.release() == 0
        assert await s.records("acc-0001") == []
        later(s.clock, 1)
        assert await s.release() == 3
        got = await s.campaigns.get(c.id)
        assert (got.state, got.released, got.pending) == ("done", 3, 0)
        assert [r.state for r in await s.records("acc-0001")] == ["sent"]


async def test_release_keeps_the_rate(nlu: Understander, store: Store) -> None:
    async with service(nlu, store, DAY) as s:
        c = await s.campaigns.create("paced", "collections", DAY, rate=2)
        await s.campaigns.import_rows(c.id, rows(*range(1, 31)))
        released = await s.release()
        for _ in range(10):  # 5 s in rounds of half a second
            later(s.clock, 0.5)
            released += await s.release()
        # A bucket of two intervals' worth to start with (rounds run late: bucket.burst), then
        # 2 a second: the pace holds, the first round may release a little ahead.
        assert 12 <= released <= 14
        got = await s.campaigns.get(c.id)
        assert (got.released, got.pending, got.state) == (released, 30 - released, "running")


async def test_pause_stops_release_and_resume_goes_on(nlu: Understander, store: Store) -> None:
    async with service(nlu, store, DAY) as s:
        c = await s.campaigns.create("pausable", "collections", DAY, rate=2)
        await s.campaigns.import_rows(c.id, rows(*range(1, 11)))
        first = await s.release()
        assert first == 4  # the bucket starts full: two intervals' worth
        assert (await s.campaigns.pause("pausable")).state == "paused"
        later(s.clock, 5)
        assert await s.release() == 0
        assert (await s.campaigns.resume(c.id)).state == "running"
        assert await s.release() == 4  # the bucket holds two intervals' worth, not the pause's
        later(s.clock, 1)
        assert await s.release() == 2


async def test_cancel_drops_the_pending(nlu: Understander, store: Store) -> None:
    async with service(nlu, store, DAY) as s:
        c = await s.campaigns.create("cancelled", "collections", DAY, rate=2)
        await s.campaigns.import_rows(c.id, rows(*range(1, 11)))
        await s.release()
        got = await s.campaigns.cancel(c.id)
        assert (got.state, got.released, got.pending) == ("cancelled", 4, 0)
        later(s.clock, 10)
        assert await s.release() == 0
        assert await s.records("acc-0005") == []
        assert len(await s.records("acc-0001")) == 1  # released before: untouched
        # Every member is in a count: the 6 the cancel left are "cancelled" (an operator
        # found them in none).
        st = await s.campaigns.status(c.id)
        assert (st.imported, st.released, st.pending, st.cancelled) == (10, 4, 0, 6)


async def test_an_account_in_two_campaigns_is_texted_once(nlu: Understander, store: Store) -> None:
    async with service(nlu, store, DAY) as s:
        a = await s.campaigns.create("a", "collections", DAY, rate=10)
        b = await s.campaigns.create("b", "collections", DAY, rate=10)
        await s.campaigns.import_rows(a.id, rows(1, 2))
        await s.campaigns.import_rows(b.id, rows(2, 3))
        assert await s.release() == 4
        for i in (1, 2, 3):
            assert len(await s.records(f"acc-{i:04d}")) == 1
        sandbox = [m.phone for m in await store.list_sandbox()]
        assert sorted(sandbox) == ["+8613800000001", "+8613800000002", "+8613800000003"]


async def test_reminders_released_after_21_are_deferred_to_8(
    nlu: Understander, store: Store
) -> None:
    # The cn pack's window ends at 21:00 with a 45-minute latency buffer: 20:00 goes out.
    evening = datetime(2026, 11, 25, 20, 0, tzinfo=SHANGHAI)
    async with service(nlu, store, evening) as s:
        c = await s.campaigns.create("evening", "collections", evening, rate=1)
        await s.campaigns.import_rows(c.id, rows(1, 2, 3))
        assert await s.release() == 2  # 20:00 (a full bucket: two intervals' worth)
        later(s.clock, 3601)
        assert await s.release() == 1  # 21:00:01
        first, second = [(await s.records(a))[0] for a in ("acc-0001", "acc-0003")]
        assert first.state == "sent"
        assert second.state == "deferred"
        not_before = second.message.not_before
        assert not_before is not None
        assert not_before.astimezone(SHANGHAI) == datetime(2026, 11, 26, 8, 0, tzinfo=SHANGHAI)


async def test_a_reminder_held_until_8_leaves_with_the_amount_imported_meanwhile(
    nlu: Understander, store: Store
) -> None:
    """An operator's trial: a deferred reminder still quoted the old amount after a re-import
    changed it. Held at 06:30 until 08:00 the same day (a later day re-rendered it already,
    for its days overdue), it must leave with the ledger's amount of 08:00."""
    dawn = datetime(2026, 11, 25, 6, 30, tzinfo=SHANGHAI)
    async with service(nlu, store, dawn) as s:
        c = await s.campaigns.create("early", "collections", dawn, rate=10)
        await s.campaigns.import_rows(c.id, rows(1, amount_due="3200.00"))
        assert await s.release() == 1
        (held,) = await s.records("acc-0001")
        assert held.state == "deferred" and "3200.00" in held.message.text
        again = await s.campaigns.import_rows(c.id, rows(1, amount_due="2750.50"))
        assert (again.added, again.imported) == (0, 1)
        s.clock.advance(timedelta(hours=1, minutes=31))  # 08:01
        assert await s.pipeline.fire_due_timers() >= 1
        await s.settle()
        (sent,) = await s.records("acc-0001")
        assert sent.state == "sent", sent.state
        assert "2750.50" in sent.message.text and "3200" not in sent.message.text
        assert sent.message.params.get("amount_due", "2750.50") == "2750.50"
        (out,) = [m for m in await store.list_sandbox() if m.account_id == "acc-0001"]
        assert "2750.50" in out.text


async def test_a_phone_that_opted_out_elsewhere_is_never_texted(
    nlu: Understander, store: Store
) -> None:
    async with service(nlu, store, DAY) as s:
        first = await s.campaigns.create("first", "collections", DAY, rate=10)
        await s.campaigns.import_rows(first.id, rows(1))
        await s.release()
        await s.reply("+8613800000001", "退订")
        assert await store.is_opted_out("+8613800000001")
        sent_before = len(await store.list_sandbox())
        second = await s.campaigns.create("second", "collections", DAY, rate=10)
        # Another loan of the same borrower: another account, the same phone.
        await s.campaigns.import_rows(second.id, rows(1, id="acc-0099"))
        assert await s.release() == 1
        assert [r.state for r in await s.records("acc-0099")] == ["blocked"]
        assert len(await store.list_sandbox()) == sent_before


async def test_importing_the_same_rows_again_starts_nobody_and_updates_amounts(
    nlu: Understander, store: Store
) -> None:
    async with service(nlu, store, DAY) as s:
        c = await s.campaigns.create("again", "collections", DAY, rate=10)
        bad = (4, RowError(4, "phone", "not a mainland mobile number"))
        first = await s.campaigns.import_rows(c.id, [*rows(1, 2), bad])
        assert (first.added, first.rejected) == (2, 1)
        assert first.errors == ["row 4: phone: not a mainland mobile number"]
        await s.release()
        changed = rows(1, 2)
        changed[1] = rows(2, amount_due="999.00")[0]
        problems: list[object] = []
        again = await s.campaigns.import_rows(c.id, changed, on_error=problems.append)
        assert (again.imported, again.added, again.rejected) == (2, 0, 0)
        assert again.updated == 1  # acc-0002's amount; acc-0001 is as it was
        account = await store.get_account("acc-0002")
        assert account is not None and account.amount_due == Decimal("999.00")
        later(s.clock, 60)
        assert await s.release() == 0
        for i in (1, 2):
            assert len(await s.records(f"acc-{i:04d}")) == 1
        got = await s.campaigns.get(c.id)
        # The fixed file refused nothing: the campaign's rejected is the latest import's.
        assert (got.imported, got.rejected, got.released) == (2, 0, 2)
        await s.campaigns.import_rows(c.id, [*rows(1, 2), bad])  # the first file again
        await s.campaigns.import_rows(c.id, [*rows(1, 2), bad])  # and again: 1, never 2
        got = await s.campaigns.get(c.id)
        assert (got.imported, got.rejected, got.released) == (2, 1, 2)


async def test_members_taken_by_a_process_that_died_are_released_once(
    nlu: Understander, store: Store
) -> None:
    async with service(nlu, store, DAY) as s:
        c = await s.campaigns.create("crash", "collections", DAY, rate=10)
        await s.campaigns.import_rows(c.id, rows(1, 2, 3))
        # A process takes two and dies before submitting them.
        assert await store.campaigns.take_due(c.id, 2, s.clock.now()) == ["acc-0001", "acc-0002"]
        assert await s.release() == 1  # the third; the two are another's until the lease ends
        assert await s.records("acc-0001") == []
        later(s.clock, 31)
        assert await s.release() == 2
        later(s.clock, 31)
        assert await s.release() == 0
        for i in (1, 2, 3):
            assert len(await s.records(f"acc-{i:04d}")) == 1
        got = await s.campaigns.get(c.id)
        assert (got.state, got.released, got.releasing) == ("done", 3, 0)


async def test_release_waits_while_the_process_has_a_backlog(
    nlu: Understander, store: Store
) -> None:
    """The backlog guard: while this process has max_backlog accounts waiting for its drains,
    a round releases nobody and the bucket keeps its tokens; as the backlog falls, the release
    goes on, never past the room left."""
    async with service(nlu, store, DAY) as s:
        waiting = [0]
        s.campaigns.backlog = lambda: waiting[0]
        s.campaigns.max_backlog = 5
        c = await s.campaigns.create("guarded", "collections", DAY, rate=2)
        await s.campaigns.import_rows(c.id, rows(*range(1, 11)))
        waiting[0] = 5
        assert await s.release() == 0
        later(s.clock, 0.5)
        waiting[0] = 4
        assert await s.release() == 1  # the room, though the bucket holds more
        waiting[0] = 0
        assert await s.release() == 3  # the rest of the bucket: the tokens were kept
        later(s.clock, 1)
        assert await s.release() == 2  # and then the rate
        got = await s.campaigns.get(c.id)
        assert (got.released, got.pending) == (6, 4)
        assert [r.state for r in await s.records("acc-0001")] == ["sent"]


async def test_an_import_says_which_rows_share_a_phone_with_another_account(
    nlu: Understander, store: Store
) -> None:
    """A phone already another account's (in the store or earlier in the file) is taken — one
    borrower may have two loans — but said, row by row: replies from it reach only the account
    imported last (as POST /api/accounts warns)."""
    async with service(nlu, store, DAY) as s:
        first = await s.campaigns.create("first", "collections", DAY + timedelta(days=1))
        await s.campaigns.import_rows(first.id, rows(1))
        c = await s.campaigns.create("second", "collections", DAY + timedelta(days=1))
        shared = rows(50, phone="+8613800000001")  # acc-0001's phone, in the store
        twice = rows(51, 52, phone="+8613800000099")  # two rows of this file
        report = await s.campaigns.import_rows(c.id, [*rows(2), *shared, *twice])
        assert (report.imported, report.rejected, report.shared_phones) == (4, 0, 2)
        assert report.warnings == [
            "row 51: phone +86138****0001 is also account acc-0001's;"
            " replies from it now go to acc-0050",
            "row 53: phone +86138****0099 is also account acc-0051's;"
            " replies from it now go to acc-0052",
        ]
        again = await s.campaigns.import_rows(c.id, [*rows(2), *shared, *twice])
        assert again.shared_phones == 2  # said again: it is still so

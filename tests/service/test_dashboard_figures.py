"""The dashboard's figures (bot.reports.collect) after a scripted journey, on memory and on
Redis: five accounts started by a campaign, replies with their intents (a promise, an
opt-out, a dispute handed to a person), a payment that keeps the promise, and a message the
gate blocks (a second account on the opted-out number)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.records import QueuedEvent
from bot.reports import collect, render
from bot.reports.model import Dashboard
from bot.storage.base import Store
from bot.storage.redis import RedisStore
from common.errors import UsageError
from intents import Understander
from tests.service.campaignhelpers import Service, rows, service
from tests.service.conftest import RedisServer

pytestmark = pytest.mark.timeout(90)
DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, Wednesday
TODAY = dt.date(2026, 11, 25)


async def journey(s: Service) -> str:
    """The scripted journey; the campaign's id."""
    c = await s.campaigns.create("november", "collections", DAY, rate=10)
    await s.campaigns.import_rows(c.id, rows(1, 2, 3, 4, 5))
    assert await s.release() == 5
    s.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    await s.reply("+8613800000001", "明天还3200")  # a promise (for tomorrow)
    await s.reply("+8613800000002", "退订")  # an opt-out
    await s.reply("+8613800000003", "这笔钱我根本没借过，你们搞错了")  # a dispute: handoff
    await s.reply("+8613800000004", "好的")  # an acknowledgement
    s.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    pay = QueuedEvent(kind="payment", at=s.clock.now(), amount=Decimal("3200.00"), reference="P1")
    await s.pipeline.submit("acc-0001", pay)  # the promise kept
    await s.settle()
    # A second account on the opted-out number: its first reminder is blocked by the gate.
    other = await s.campaigns.create("second", "collections", s.clock.now(), rate=10)
    await s.campaigns.import_rows(other.id, rows(6, phone="+8613800000002"))
    assert await s.release() == 1
    return c.id


async def test_figures_follow_the_journey(nlu: Understander, store: Store) -> None:
    async with service(nlu, store, DAY) as s:
        campaign = await journey(s)
        now = s.clock.now()
        start, end = collect.parse_range(None, None, now)
        assert (start, end) == (TODAY - timedelta(days=13), TODAY)
        d = await collect.dashboard(store, start, end, now)
        assert d.accounts == 6
        f = d.funnel
        assert (f.reminded, f.replied, f.promised, f.paid) == (5, 4, 1, 1)
        assert f.recovered == Decimal("3200.00")
        assert f.delivered <= f.reminded
        today = d.days[-1]
        assert today.day == TODAY and today.reminded == 5 and today.recovered == Decimal("3200.00")
        assert sum(r.reminded for r in d.days) == 5 and len(d.days) == 14
        intents = d.intents[-1].intents
        assert intents["promise_to_pay"] == 1 and intents["stop"] == 1
        assert intents["dispute"] == 1 and sum(intents.values()) == 4
        r = d.rates
        assert (r.promises_made, r.promises_kept, r.promises_broken) == (1, 1, 0)
        assert r.promise_kept_rate == 1.0
        assert (r.opted_out, r.opt_out_rate) == (1, 0.2)
        assert (r.complaints, r.complaint_rate) == (1, 0.2)
        assert d.handoffs.by_reason.get("dispute") == 1
        assert d.handoffs.sla_met + d.handoffs.sla_missed + d.handoffs.sla_pending == (
            d.handoffs.opened
        )
        assert d.gate.blocked, d.gate
        first = d.templates[0]
        assert (first.template, first.sent, first.replied) == ("first_reminder", 5, 4)
        assert first.reply_rate == 0.8
        assert sum(t.paid for t in d.templates) == 1  # the promise's confirmation, last touch
        names = {k.name: k for k in d.campaigns}
        assert names["november"].reminded == 5 and names["november"].paid == 1
        assert names["second"].reminded == 0

        # One campaign: only its members; an empty range: zeros, not errors.
        one = await collect.dashboard(
            store, start, end, now, await collect.find_campaign(store, "november")
        )
        assert (one.accounts, one.campaign, one.funnel.reminded) == (6 - 1, campaign, 5)
        assert not one.gate.blocked
        before = await collect.dashboard(
            store, TODAY - timedelta(days=30), TODAY - timedelta(days=1), now
        )
        assert before.funnel.reminded == 0 and before.rates.promise_kept_rate is None

        # Written out: every figure is a CSV row; the HTML carries the figures and its scripts.
        csv = render.to_csv(d)
        assert csv.startswith("\ufeffsection,key,metric,value\r\n")
        assert "funnel,total,recovered,3200.00" in csv
        html = render.standalone_html(d)
        assert "Chart.js v4.6.2" in html and 'id="chart-funnel"' in html
        assert (
            Dashboard.model_validate_json(
                html.split('id="dashboard-data">')[1].split("</script>")[0]
            )
            == d
        )


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        ("2026-13-01", None, "from: not a date"),
        (None, "yesterday", "to: not a date"),
        ("2026-11-25", "2026-11-01", "is after"),
        ("2024-01-01", "2026-11-25", "at most 366 days"),
    ],
)
def test_bad_ranges_are_refused_with_the_reason(
    start: str | None, end: str | None, why: str
) -> None:
    with pytest.raises(UsageError, match=why):
        collect.parse_range(start, end, DAY)


async def test_smsbot_report_writes_the_file(
    nlu: Understander, redis_server: RedisServer, tmp_path: Path
) -> None:
    """``smsbot report`` on the service's Redis store: the HTML file and the CSV."""
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.flushdb()
    store = RedisStore.from_url(redis_server.url)
    try:
        async with service(nlu, store, DAY) as s:
            await journey(s)
    finally:
        await store.close()
    env = {**os.environ, "SMSBOT_REDIS_URL": redis_server.url}
    for out in (tmp_path / "report.html", tmp_path / "figures.csv"):
        args = ["--from", "2026-11-20", "--to", "2026-11-25", "--campaign", "november"]
        done = await asyncio.to_thread(smsbot, env, "report", *args, "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert '"reminded": "5"' in done.stdout and f"written to {out}" in done.stdout
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Chart.js v4.6.2" in html and "november" in html and "<script src" not in html
    assert "funnel,total,paid,1" in (tmp_path / "figures.csv").read_text(encoding="utf-8-sig")
    bad = await asyncio.to_thread(smsbot, env, "report", "--to", "2026-11-31")
    assert bad.returncode == 2 and "to: not a date" in bad.stderr
    # Where it goes is checked first, with the reason: no traceback after the figures.
    for where, reason in (
        (tmp_path / "missing" / "r.html", "not a file in an existing directory"),
        (tmp_path, "write a .html or a .csv file"),
        (tmp_path / "r.pdf", "write a .html or a .csv file"),
    ):
        bad = await asyncio.to_thread(smsbot, env, "report", "-o", str(where))
        assert bad.returncode == 2 and reason in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr


def smsbot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

"""``smsbot report``: the dashboard's figures for a range of Beijing dates as one standalone
HTML file (charts inlined, opens offline: for e-mailing) or CSV, read from the store the
service runs on (``SMSBOT_REDIS_URL``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.campaigns.cli import run_on_store
from bot.campaigns.service import Campaigns
from bot.reports import collect, render
from bot.reports.model import Dashboard
from common.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="results over a date range as one HTML file (charts inlined) or CSV"
    )
    p.add_argument(
        "--from", dest="start", help="first Beijing date, YYYY-MM-DD (default: 13 days before --to)"
    )
    p.add_argument("--to", dest="end", help="last Beijing date, included (default: today)")
    p.add_argument("--campaign", help="only this campaign's members (id or name)")
    p.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help=".html (default) or .csv"
    )
    p.set_defaults(handler=_report)


async def build(c: Campaigns, start: str | None, end: str | None, ref: str | None) -> Dashboard:
    now = c.clock.now()
    first, last = collect.parse_range(start, end, now)
    campaign = await collect.find_campaign(c.store, ref) if ref else None
    return await collect.dashboard(c.store, first, last, now, campaign)


def _report(args: argparse.Namespace) -> int:
    out: Path = args.output
    # Before the figures are read (a minute on a large store): where they go must be writable.
    if out.suffix.lower() not in (".html", ".htm", ".csv"):
        raise UsageError(f"-o {out}: write a .html or a .csv file")
    if out.is_dir() or not out.parent.is_dir():
        raise UsageError(f"-o {out}: not a file in an existing directory")
    d = run_on_store(lambda c: build(c, args.start, args.end, args.campaign))
    if out.suffix.lower() == ".csv":
        out.write_text(render.to_csv(d), encoding="utf-8")
    else:
        out.write_text(render.standalone_html(d), encoding="utf-8")
    print(render.summary(d))
    print(f"written to {out}")
    return 0

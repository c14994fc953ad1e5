"""``smsbot campaign``: import a lender's file, watch, export, pause, resume, cancel, list —
on the store the service runs on (``SMSBOT_REDIS_URL``; the memory store exists only inside
a running ``smsbot serve``, so the commands refuse to run there, as ``smsbot agents`` does).
The running service releases; these commands only change what it reads."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.campaigns import rows
from bot.campaigns.columns import parse_map
from bot.campaigns.model import BEIJING, Campaign, CampaignError
from bot.campaigns.rows import RowError
from bot.campaigns.service import Campaigns
from bot.clock import Clock
from bot.records import QueuedEvent
from common.errors import UsageError

T = TypeVar("T")
# A --start-at without an offset is Beijing time (the lenders' files are).


def register(sub: Any) -> None:
    p = sub.add_parser("campaign", help="campaigns: import, status, export, pause, resume, list")
    cmd = p.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")

    imp = cmd.add_parser("import", help="import a file into campaign NAME (created if new)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--name", required=True)
    imp.add_argument("--flow", default="collections")
    imp.add_argument("--start-at", type=_when, help="ISO time (default now; no offset: Beijing)")
    imp.add_argument("--rate", type=float, default=10.0, help="accounts released per second")
    imp.add_argument("--map", type=_mapping, help='column names, e.g. "手机=phone,姓名=name"')
    imp.add_argument("--errors", type=Path, help="write the refused rows to this file")
    imp.set_defaults(handler=_import)

    status = cmd.add_parser("status", help="counts per stage (N: id or name)")
    status.add_argument("campaign")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    export = cmd.add_parser("export", help="one row per account, .csv or .xlsx")
    export.add_argument("campaign")
    export.add_argument("-o", "--output", type=Path, required=True)
    export.set_defaults(handler=_export)

    for action in ("pause", "resume", "cancel"):
        q = cmd.add_parser(action, help=f"{action} the campaign's release")
        q.add_argument("campaign")
        q.set_defaults(handler=_move, action=action)

    cmd.add_parser("list", help="every campaign").set_defaults(handler=_list)


def _when(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=BEIJING)


def _mapping(text: str) -> dict[str, str]:
    try:
        return parse_map(text)  # the reader's own parser: one syntax for CLI and API
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _import(args: argparse.Namespace) -> int:
    problems: list[RowError] = []

    async def work(c: Campaigns) -> tuple[Campaign, Any]:
        campaign = await c.store.campaigns.find(args.name)
        if campaign is None:
            campaign = await c.create(args.name, args.flow, args.start_at, args.rate)
        with args.file.open("rb") as f:
            read = rows.read_accounts(f, filename=args.file.name, mapping=args.map, flow=args.flow)
            # A bar with rows/s on a terminal (nothing in a pipe or a log).
            shown = rows.progress(read, args.file.stat().st_size, f"importing {args.file.name}")
            return campaign, await c.import_rows(campaign.id, shown, on_error=problems.append)

    campaign, report = run_on_store(work, with_flows=True)
    print(
        f"campaign {campaign.name} ({campaign.id}): {report.imported} imported"
        f" ({report.added} new, {report.updated} updated), {report.rejected} rejected"
    )
    for line in report.errors[:10]:
        print(f"  {line}")
    if report.shared_phones:
        print(
            f"{report.shared_phones} row(s) have a phone that is another account's: taken, but a"
            " reply from such a phone reaches only the account imported last"
        )
    if report.days_mismatch:
        print(
            f"{report.days_mismatch} row(s) have days_overdue that disagree with due_date:"
            " taken; messages count the days from the due date"
        )
    if report.warnings:
        for line in report.warnings[:10]:
            print(f"  {line}")
    if args.errors is not None and problems:
        rows.write_errors(problems, args.errors)
        print(f"refused rows written to {args.errors}")
    return 0 if report.imported or not report.rejected else 1


def _status(args: argparse.Namespace) -> int:
    st = run_on_store(lambda c: c.status(args.campaign))
    if args.json:
        print(st.model_dump_json(indent=2))
        return 0
    c = st.campaign
    start = c.start_at.astimezone(BEIJING)  # as --start-at reads a time without an offset
    print(f"{c.name} ({c.id}) {c.state}, flow {c.flow}, {c.rate:g}/s from {start:%F %T%z}")
    fields = st.model_dump(mode="json", exclude={"campaign"})
    for key, value in fields.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        print(f"  {key:<18} {shown}")
    return 0


def _export(args: argparse.Namespace) -> int:
    n = run_on_store(lambda c: c.export(args.campaign, args.output))
    print(f"{n} accounts written to {args.output}")
    return 0


def _move(args: argparse.Namespace) -> int:
    actions: dict[str, Callable[[Campaigns], Awaitable[Campaign]]] = {
        "pause": lambda c: c.pause(args.campaign),
        "resume": lambda c: c.resume(args.campaign),
        "cancel": lambda c: c.cancel(args.campaign),
    }
    campaign = run_on_store(actions[args.action])
    print(f"{campaign.name}: {campaign.state} ({campaign.pending} pending)")
    return 0


def _list(args: argparse.Namespace) -> int:
    campaigns = run_on_store(lambda c: c.list_all())
    if not campaigns:
        print("no campaigns yet (smsbot campaign import FILE --name NAME)")
        return 0
    for k in campaigns:
        print(f"{k.id}  {k.state:<9}  {k.released:>7}/{k.imported:<7}  {k.rate:>6g}/s  {k.name}")
    return 0


async def _never(account_id: str, event: QueuedEvent, dedup: str | None) -> bool:
    raise CampaignError("only the running service releases accounts")


def run_on_store(action: Callable[[Campaigns], Awaitable[T]], *, with_flows: bool = False) -> T:
    """``action`` on the service's Redis store (also ``smsbot report``)."""
    from bot.settings import load_settings

    settings = load_settings()
    if not settings.redis_url:
        raise UsageError(
            "SMSBOT_REDIS_URL is not set: campaigns live in the service's store, and the"
            " memory store exists only inside a running `smsbot serve`"
        )
    redis_url = settings.redis_url
    registry: Any = None
    if with_flows:  # a new campaign's flow is checked against the flows the service runs
        from bot.compliance.gate import Gate
        from dialogs.registry import Registry

        registry = Registry.load(settings.flows_dir, Gate.load(settings.compliance_file).policy)

    async def run() -> T:
        from bot.storage.redis import RedisStore

        store = RedisStore.from_url(redis_url)
        try:
            return await action(Campaigns(store, _never, registry, Clock()))
        finally:
            await store.close()

    return asyncio.run(run())

"""``smsbot retention run [--dry-run] [--list] [--json] [--now T]``: apply the retention policy
to the store the service runs on (``SMSBOT_REDIS_URL``; the memory store exists only inside a
running ``smsbot serve``). Prints counts per kind and, with ``--list``, each item's id — never
personal text. Safe to run while the service runs (bot.storage.redis_retention)."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.retention.policy import load_retention
from bot.retention.sweep import Report, sweep
from common.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("retention", help="retention of personal data: delete or redact by age")
    cmd = p.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    run = cmd.add_parser("run", help="delete or redact what the policy says is past its time")
    run.add_argument("--dry-run", action="store_true", help="only list what a run would do")
    run.add_argument("--list", action="store_true", help="each item's kind, account and id")
    run.add_argument("--json", action="store_true", help="the report as JSON")
    run.add_argument("--now", type=_when, help="ISO time to judge ages at (default: now)")
    run.add_argument("--config", type=Path, help="policy file (default SMSBOT_RETENTION_FILE)")
    run.set_defaults(handler=_run)


def _when(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from exc
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time with its offset: {text!r}")
    return at


def _run(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    settings = load_settings()
    policy = load_retention(args.config or settings.retention_file)  # before touching Redis
    if not settings.redis_url:
        raise UsageError(
            "SMSBOT_REDIS_URL is not set: retention works on the service's store, and the"
            " memory store exists only inside a running `smsbot serve`"
        )
    redis_url = settings.redis_url
    now: datetime = args.now or datetime.now(UTC)

    async def work() -> Report:
        from bot.storage.redis import RedisStore

        store = RedisStore.from_url(redis_url)
        try:
            return await sweep(store, policy, now, apply=not args.dry_run)
        finally:
            await store.close()

    report = asyncio.run(work())
    if args.json:
        shown = report if args.list else report.model_copy(update={"items": []})
        print(json.dumps(shown.model_dump(mode="json"), ensure_ascii=False))
        return 0
    verb = "would delete or redact" if report.dry_run else "deleted or redacted"
    print(f"retention at {report.now.isoformat()} ({report.accounts} accounts): {verb}")
    for kind, n in report.counts.items():
        print(f"  {kind:<20} {n}")
    if args.list:
        for item in report.items:
            print(f"{item.kind}\t{item.action}\t{item.where}\t{item.id}")
    return 0

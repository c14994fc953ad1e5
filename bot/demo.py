"""Demo data for ``make run``: a handful of borrowers whose reminders go out at start-up."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.context import CLOCK, PIPELINE, STORE
from bot.records import AccountRecord, QueuedEvent

_ROWS = [
    ("demo-0001", "张伟", "+8613800000001", "3200.00", 5),
    ("demo-0002", "李娜", "+8613800000002", "1500.00", 12),
    ("demo-0003", "王芳", "+8613800000003", "860.50", 3),
    ("demo-0004", "刘洋", "+8613800000004", "12000.00", 31),
    ("demo-0005", "陈静", "+8613800000005", "499.00", 1),
]
# The only accounts the simulator acts on: even when demo mode is forced onto a shared store,
# its unauthenticated page cannot read or text anybody else.
DEMO_IDS = frozenset(row[0] for row in _ROWS)


# The demo borrowers are on +86 numbers: their days overdue count in Beijing time, as the
# reminder's 已逾期N天 does (started before 08:00 Beijing, the UTC date said a day less).
_DEMO_ZONE = ZoneInfo("Asia/Shanghai")


def demo_accounts(app: web.Application) -> list[AccountRecord]:
    today = app[CLOCK].now().astimezone(_DEMO_ZONE).date()
    return [
        AccountRecord(
            id=acc_id,
            name=name,
            phone=phone,
            amount_due=Decimal(amount),
            days_overdue=days,
            due_date=today - timedelta(days=days),
        )
        for acc_id, name, phone, amount, days in _ROWS
    ]


async def load_demo(app: web.Application) -> None:
    store, pipeline, clock = app[STORE], app[PIPELINE], app[CLOCK]
    for account in demo_accounts(app):
        if await store.upsert_account(account):
            await pipeline.submit(
                account.id, QueuedEvent(kind="start", at=clock.now()), dedup="start"
            )

"""Helpers shared by the dialog tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from dialogs import conversation as c

FIXTURES = Path(__file__).parent / "fixtures"
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)  # a Wednesday
ACCOUNT = c.Account(
    id="A-1", name="张三", amount_due=Decimal("3200.00"), due_date=date(2026, 11, 25), last4="1234"
)


def reply(*intents: str, text: str = "", **entities: object) -> c.Reply:
    """A reply with pinned intents, as the NLU adapter would build it."""
    return c.Reply(
        text=text,
        intents=tuple(c.ScoredIntent(name=i) for i in intents),
        entities=c.ReplyEntities.model_validate(entities),
    )


def sends(actions: list[c.AnyAction]) -> list[c.Send]:
    return [a for a in actions if isinstance(a, c.Send)]

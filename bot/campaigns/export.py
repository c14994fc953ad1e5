"""``export``: one row per member, the lender's own report (not masked: it is their data),
as CSV (UTF-8 with a BOM, so Excel reads the Chinese) or XLSX by the file's extension;
streamed, a batch of members at a time (bot.campaigns.status)."""

from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from bot.campaigns.model import BEIJING, CampaignError
from bot.campaigns.status import Member, read_members
from bot.storage.base import Store

COLUMNS = (
    "id",
    "name",
    "phone",
    "amount_due",
    "state",
    "last_intent",
    "promise_date",
    "promise_amount",
    "paid",
    "overpaid",  # paid beyond the amount due: a refund may be owed
    "opted_out",
    "handed_off",
    "last_message_state",
    "sent_at",  # when the latest message left; Beijing time, as the lenders' files
    "deferred_until",  # when the gate lets the latest message go, if it holds it
    "last_reply_at",
)


_MONEY = tuple(COLUMNS.index(c) for c in ("amount_due", "promise_amount", "paid", "overpaid"))
_DATE = COLUMNS.index("promise_date")
_TIMES = tuple(COLUMNS.index(c) for c in ("sent_at", "deferred_until", "last_reply_at"))


def row(m: Member) -> list[str]:
    a, conv = m.account, m.conversation
    promise = conv.promise if conv else None
    return [
        m.id,
        a.name if a else "",
        a.phone if a else "",
        _money(a.amount_due) if a else "",
        conv.state if conv else "",
        (conv.last_intent or "") if conv else "",
        promise.date.isoformat() if promise and promise.date else "",
        _money(promise.amount) if promise and promise.amount is not None else "",
        _money(conv.paid_total if conv else Decimal(0)),
        _money(max(conv.paid_total - conv.account.amount_due, Decimal(0)) if conv else Decimal(0)),
        "yes" if m.opted_out else "no",
        "yes" if m.handed_off else "no",
        m.last.state if m.last else "",
        _time(m.last.sent_at if m.last else None),
        _time(m.last.message.not_before if m.last and m.last.state == "deferred" else None),
        _time(m.last_reply_at),
    ]


def _time(at: datetime | None) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"  # one way for every amount (3200, 3200.0 and 3200.00 are one sum)


async def export(store: Store, campaign_id: str, path: Path) -> int:
    """Writes the report; how many accounts it lists."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return await _csv(store, campaign_id, path)
    if suffix == ".xlsx":
        return await _xlsx(store, campaign_id, path)
    raise CampaignError(f"{path}: export writes .csv or .xlsx")


async def _csv(store: Store, campaign_id: str, path: Path) -> int:
    n = 0
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        async for m in read_members(store, campaign_id):
            out.writerow(row(m))
            n += 1
    return n


async def _xlsx(store: Store, campaign_id: str, path: Path) -> int:
    try:
        from openpyxl import Workbook  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:  # an optional dependency: CSV needs nothing
        raise CampaignError("XLSX export needs openpyxl (pip install openpyxl)") from exc
    from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped,import-not-found,unused-ignore]

    book = Workbook(write_only=True)  # rows go to a temporary file, not held in memory
    sheet = book.create_sheet("accounts")
    sheet.append(list(COLUMNS))

    def cells(values: list[str]) -> list[object]:
        """Amounts as numbers and the promised day as a date, so Excel sums and sorts them
        (a text cell, as in the CSV, would need converting first)."""
        out: list[object] = list(values)
        for i in _MONEY:
            if values[i]:
                cell = WriteOnlyCell(sheet, value=float(values[i]))  # Excel keeps doubles
                cell.number_format = "#,##0.00"
                out[i] = cell
        if values[_DATE]:
            cell = WriteOnlyCell(sheet, value=datetime.fromisoformat(values[_DATE]))
            cell.number_format = "yyyy-mm-dd"
            out[_DATE] = cell
        for i in _TIMES:  # Excel has no zones: Beijing time, as in the CSV
            if values[i]:
                cell = WriteOnlyCell(sheet, value=datetime.fromisoformat(values[i]))
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
                out[i] = cell
        return out

    n = 0
    async for m in read_members(store, campaign_id):
        sheet.append(cells(row(m)))
        n += 1
    book.save(path)
    return n

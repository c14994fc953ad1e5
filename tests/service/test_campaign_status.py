"""A campaign's status and export after a scripted conversation (memory and Redis): replies
and their intents, a promise, a payment, an opt-out, a handoff."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.campaigns.rows import RowError
from bot.records import QueuedEvent
from bot.storage.base import Store
from intents import Understander
from tests.service.campaignhelpers import rows, service

pytestmark = pytest.mark.timeout(60)
DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


async def test_status_and_export_follow_the_conversations(
    nlu: Understander, store: Store, tmp_path: Path
) -> None:
    async with service(nlu, store, DAY) as s:
        c = await s.campaigns.create("status", "collections", DAY, rate=10)
        bad = (9, RowError(9, "amount_due", "not a number"))
        await s.campaigns.import_rows(c.id, [*rows(1, 2, 3, 4, 5), bad])
        assert await s.release() == 5
        await s.reply("+8613800000001", "明天还3200")  # a promise
        await s.reply("+8613800000002", "退订")  # an opt-out
        await s.reply("+8613800000003", "这笔钱我根本没借过，你们搞错了")  # a dispute: handoff
        payment = QueuedEvent(kind="payment", at=s.clock.now(), amount=Decimal("500.00"))
        await s.pipeline.submit("acc-0004", payment.model_copy(update={"reference": "P1"}))
        # acc-0005 owed 3200.00 and paid 3500.00: an overpayment the lender must see.
        more = QueuedEvent(kind="payment", at=s.clock.now(), amount=Decimal("3500.00"))
        await s.pipeline.submit("acc-0005", more.model_copy(update={"reference": "P2"}))
        await s.settle()

        st = await s.campaigns.status("status")
        assert (st.imported, st.rejected, st.pending, st.released) == (5, 1, 0, 5)
        assert st.replied == 3
        assert st.replies_by_intent["promise_to_pay"] == 1
        assert sum(st.replies_by_intent.values()) == 3
        assert (st.promised, st.paid, st.recovered) == (1, 2, Decimal("4000.00"))
        assert st.overpaid == 1  # acc-0005
        # The collections flow hands a stop to a person too (a case is opened for it).
        assert (st.opted_out, st.handed_off) == (1, 2)
        assert st.sent + st.delivered + st.queued + st.deferred + st.blocked == 5

        out = tmp_path / "report.csv"
        assert await s.campaigns.export(c.id, out) == 5
        raw = out.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the Chinese
        table = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
        assert [r["id"] for r in table] == [f"acc-{i:04d}" for i in range(1, 6)]
        by_id = {r["id"]: r for r in table}
        assert (by_id["acc-0001"]["name"], by_id["acc-0001"]["amount_due"]) == ("张三", "3200.00")
        assert by_id["acc-0001"]["last_intent"] == "promise_to_pay"
        assert by_id["acc-0001"]["promise_amount"] == "3200.00"
        assert by_id["acc-0002"]["opted_out"] == "yes"
        assert by_id["acc-0003"]["handed_off"] == "yes"
        assert by_id["acc-0003"]["state"] == "with_agent"
        assert by_id["acc-0004"]["paid"] == "500.00"
        assert (by_id["acc-0004"]["overpaid"], by_id["acc-0005"]["overpaid"]) == ("0.00", "300.00")
        assert by_id["acc-0005"]["last_message_state"] == "sent"
        # Times in Beijing time, as the lender's own files: 10:00 was the release.
        assert by_id["acc-0005"]["sent_at"].startswith("2026-11-25 10:00")
        assert by_id["acc-0001"]["last_reply_at"].startswith("2026-11-25 10:00")
        assert by_id["acc-0005"]["last_reply_at"] == by_id["acc-0005"]["deferred_until"] == ""

        xlsx = tmp_path / "report.xlsx"
        pytest.importorskip("openpyxl")
        assert await s.campaigns.export(c.id, xlsx) == 5
        from openpyxl import load_workbook  # type: ignore[import-untyped,unused-ignore]

        book = load_workbook(xlsx, read_only=True)
        values = [list(r) for r in book["accounts"].iter_rows(values_only=True)]
        book.close()
        assert values[0][0] == "id" and values[1][:2] == ["acc-0001", "张三"]
        # Amounts are numbers and the promised day a date: Excel sums and sorts them.
        head = list(values[0])
        xl = {r[0]: dict(zip(head, r, strict=True)) for r in values[1:]}
        assert xl["acc-0001"]["amount_due"] == 3200.0
        assert xl["acc-0001"]["promise_amount"] == 3200.0
        assert xl["acc-0004"]["paid"] == 500.0
        assert sum(r["amount_due"] for r in xl.values()) == 5 * 3200.0
        promised = xl["acc-0001"]["promise_date"]
        assert isinstance(promised, datetime), promised
        assert promised.date().isoformat() == by_id["acc-0001"]["promise_date"]
        sent = xl["acc-0005"]["sent_at"]
        assert isinstance(sent, datetime) and sent.strftime("%F %T") == by_id["acc-0005"]["sent_at"]

"""A message the carrier never had goes back through the gate, on each store (memory, Redis),
with a crash at the worst moment of that path."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.clock import Clock
from bot.context import PIPELINE, SENDER
from bot.outbound.carriers.base import SendOutcome
from bot.records import Outbound
from bot.storage.base import Store, Transition
from intents import Understander
from tests.service.apphelpers import AUTH, account, client, conversation

pytestmark = pytest.mark.timeout(60)

SH = ZoneInfo("Asia/Shanghai")


async def _settle(c: Any) -> None:
    await asyncio.sleep(0.15)  # the timer loop runs every 50 ms in tests
    await c.app[PIPELINE].idle()


async def test_a_send_the_carrier_never_got_is_not_held_back_by_its_own_charge(
    nlu: Understander, store: Store
) -> None:
    """A first reminder's call ends in doubt; the carrier later says it never had it, so it
    goes back to the gate, and the process dies before the attempt's ledger charge is taken
    back (the release follows the step: an extra charge is the safe side of a crash). The
    gate judges it again: its own earlier charge is not another message, so it leaves now.
    Before: held to the next day by the daily cap and the same-text gap, both counting the
    message against itself (found by the kill -9 test with a failing carrier)."""
    clock = Clock(datetime(2026, 12, 2, 10, 0, tzinfo=SH) - Clock().now())
    async with client(nlu, store=store, clock=clock) as c:
        sender = c.app[SENDER]
        sandbox = sender.carriers["sandbox"]
        send = sandbox.send_outbound
        calls: list[str] = []

        async def first_in_doubt(msg: Outbound) -> SendOutcome:
            calls.append(msg.id)
            if len(calls) == 1:
                return SendOutcome(status="ambiguous", code="timeout")
            return await send(msg)

        def through_the_call(message: object) -> None:  # as a real carrier's sends go
            return None

        sandbox.send_outbound = first_in_doubt  # type: ignore[method-assign]
        sandbox.stored_send = through_the_call  # type: ignore[method-assign]
        move = store.move

        async def release_lost(t: Transition) -> bool:
            if t.record.state == "deferred" and t.release is not None:
                t = replace(t, release=None)  # killed before the charge was taken back
            return await move(t)

        store.move = release_lost  # type: ignore[method-assign]
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await _settle(c)
        (reminder,) = await store.outbound_records("acc-0001")
        assert reminder.state == "sending" and reminder.ambiguous
        clock.advance(timedelta(seconds=sender.policy.reconcile_after_s + 1))
        await sender.poll()
        await _settle(c)
        got = await store.outbound("acc-0001", reminder.id)
        assert got is not None and (got.state, got.attempts) == ("sent", 2)
        assert calls == [reminder.id, reminder.id]
        ledger = await store.send_history(account(1)["phone"], clock.now() - timedelta(days=1))
        assert [e.message_id for e in ledger] == [reminder.id]  # charged once
        conv = await conversation(c, "acc-0001")
        verdicts = [e["detail"]["verdict"] for e in conv["transcript"] if e["kind"] == "gate"]
        assert verdicts == ["send", "send"]

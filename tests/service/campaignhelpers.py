"""Campaign tests' helpers: the service with a test clock, rows as the file reader yields
them (``RowError`` is the reader's), a borrower's reply."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from bot.campaigns.service import Campaigns, Row
from bot.clock import Clock
from bot.context import CAMPAIGNS, PIPELINE
from bot.outbound.record import OutboundRecord
from bot.pipeline import Pipeline
from bot.records import AccountRecord
from bot.storage.base import Store
from bot.transport.inbound import InboundSms
from intents import Understander
from tests.service.apphelpers import account, client

_ids = itertools.count(1)


def rows(*numbers: int, **extra: Any) -> list[Row]:
    extra.setdefault("days_overdue", 1)  # due 2026-11-24, and the tests' clocks on 11-25
    return [(n + 1, AccountRecord.model_validate(account(n, **extra))) for n in numbers]


@dataclass
class Service:
    c: TestClient[Any, Any]
    store: Store
    clock: Clock

    @property
    def campaigns(self) -> Campaigns:
        return self.c.app[CAMPAIGNS]

    @property
    def pipeline(self) -> Pipeline:
        return self.c.app[PIPELINE]

    async def settle(self) -> None:
        await self.pipeline.idle()

    async def release(self) -> int:
        released = await self.campaigns.release_due(self.clock.now())
        await self.settle()
        return released

    async def records(self, account_id: str) -> list[OutboundRecord]:
        return await self.store.outbound_records(account_id)

    async def reply(self, phone: str, text: str) -> None:
        sms = InboundSms(
            provider="twilio",
            msg_id=f"SM{next(_ids):08d}",
            phone=phone,
            text=text,
            received_at=self.clock.now(),
        )
        assert await self.pipeline.receive(sms) == "accepted"
        await self.settle()


class StoppedClock(Clock):
    """A clock that moves only when told: a slow run must not release more than the pace
    the test counts on (the service's clock is real time plus an offset)."""

    def __init__(self, at: datetime) -> None:
        super().__init__()
        self._at = at

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        self._at += delta
        return self._at


@asynccontextmanager
async def service(
    nlu: Understander, store: Store, at: datetime, **overrides: Any
) -> AsyncIterator[Service]:
    clock = StoppedClock(at)
    # The background loop's own release round is kept out of the way: tests call it.
    overrides.setdefault("campaign_release_interval_s", 60)
    async with client(nlu, store=store, clock=clock, **overrides) as c:
        # The pace as the service keeps it at the default interval (a round every second).
        c.app[CAMPAIGNS].interval_s = 1.0
        yield Service(c, store, clock)


def later(clock: Clock, seconds: float) -> datetime:
    return clock.advance(timedelta(seconds=seconds))

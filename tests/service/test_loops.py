"""The background loop's recovery round is paced by its own cost: a scan that takes long (a
big keyspace) is not run back to back, while a cheap one still runs every interval."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bot import loops
from bot.telemetry import metrics


class FakePipeline:
    """What run_loops uses of a pipeline: a recovery round that takes ``scan`` seconds."""

    def __init__(self, scan: float) -> None:
        self.scan = scan
        self.recoveries = 0
        self.repairs = 0
        self.ticks = 0
        self.running = True
        self.store = SimpleNamespace(desk=SimpleNamespace(repair_index=self._repair))

    async def _repair(self) -> int:
        self.repairs += 1
        return 0

    async def fire_due_timers(self) -> int:
        self.ticks += 1
        return 0

    async def expire_cases(self) -> int:
        return 0

    async def recover(self) -> int:
        self.recoveries += 1
        await asyncio.sleep(self.scan)
        return 0


async def run_for(pipeline: Any, seconds: float) -> None:
    task = asyncio.create_task(loops.run_loops(pipeline, 0.005, recovery_interval=0.02))
    await asyncio.sleep(seconds)
    pipeline.running = False
    await task


async def test_a_slow_recovery_round_waits_nineteen_times_its_cost() -> None:
    slow = FakePipeline(scan=0.1)
    await run_for(slow, 1.5)
    # Back to back (the interval counted from each round's start) it would run 15 times; at
    # most 5 % of the time: one round, the next at 2 s.
    assert slow.recoveries == 1
    assert slow.repairs == 1
    assert slow.ticks > 20  # timers are not held up by the pacing
    assert (metrics.REGISTRY.get_sample_value("smsbot_recovery_round_seconds") or 0) >= 0.1


async def test_a_cheap_recovery_round_runs_every_interval() -> None:
    cheap = FakePipeline(scan=0.0)
    await run_for(cheap, 0.5)
    assert cheap.recoveries >= 10  # every 20 ms (the timer loop's own 5 ms step between)

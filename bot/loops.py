"""The background work every process runs, one loop: due timers queued as ticks, the desk's
SLA expiry, other components' periodic steps (the campaigns' release, /metrics' sampling), and
the recovery scan for queues a crash left behind, with the case index's repair."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from bot.storage.base import StoreUnavailable

if TYPE_CHECKING:
    from bot.pipeline import Pipeline

log = logging.getLogger(__name__)

Step = tuple[float, Callable[[], Awaitable[object]]]
# The case queue's index is repaired (a SCAN, like the recovery's) at start and then every
# this many recovery rounds: it only ever holds leftovers a crash left (bot.storage.redis_desk).
_REPAIR_EVERY = 10


async def run_loops(
    pipeline: Pipeline,
    timer_interval: float,
    recovery_interval: float,
    sla_interval: float = 10.0,
    steps: Sequence[Step] = (),
) -> None:
    """Until the pipeline closes or pauses. ``steps``: other components' periodic work, each
    (interval, step), run between the timers and recovery."""
    last_recovery = last_sla = 0.0
    recoveries = 0
    loop = asyncio.get_running_loop()
    last_step = [0.0] * len(steps)
    while pipeline.running:
        try:
            await pipeline.fire_due_timers()
            if loop.time() - last_sla >= sla_interval:
                last_sla = loop.time()
                await pipeline.expire_cases()
            for i, (interval, step) in enumerate(steps):
                if loop.time() - last_step[i] >= interval:
                    last_step[i] = loop.time()
                    await step()
            if loop.time() - last_recovery >= recovery_interval:
                last_recovery = loop.time()
                await pipeline.recover()
                if recoveries % _REPAIR_EVERY == 0:
                    await pipeline.store.desk.repair_index()
                recoveries += 1
        except StoreUnavailable as exc:
            # Said once per outage by the Redis client (bot/storage/resp.py).
            log.debug("background loop: store unavailable: %s", exc)
        except Exception:
            log.exception("background loop failed; retrying")
        await asyncio.sleep(timer_interval)

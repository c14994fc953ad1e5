"""The background work every process runs, one loop: due timers queued as ticks, the desk's
SLA expiry, other components' periodic steps (the campaigns' release, /metrics' sampling), and
the recovery scan for queues a crash left behind, with the case index's repair."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from bot.storage.base import StoreUnavailable
from bot.telemetry import metrics

if TYPE_CHECKING:
    from bot.pipeline import Pipeline

log = logging.getLogger(__name__)

Step = tuple[float, Callable[[], Awaitable[object]]]
# The case queue's index is repaired (a SCAN, like the recovery's) at start and then every
# this many recovery rounds: it only ever holds leftovers a crash left (bot.storage.redis_desk).
_REPAIR_EVERY = 10
# The recovery round SCANs the whole keyspace: about 0.8 µs of Redis per key, 5.5 s for the
# 7 million keys of 1,000,000 accounts. Run every 10 s, it took 85 % of Redis and cut a
# campaign's release from 1,800 to 650 accounts/s (bench/campaign.py). A round now waits at
# least 19 times its own duration after it (at most 5 % of the time in recovery): a crash's
# leftovers are still found within a minute or two at that size, and within the interval on a
# small keyspace, where a round takes milliseconds.
RECOVERY_SHARE = 0.05


async def run_loops(
    pipeline: Pipeline,
    timer_interval: float,
    recovery_interval: float,
    sla_interval: float = 10.0,
    steps: Sequence[Step] = (),
) -> None:
    """Until the pipeline closes or pauses. ``steps``: other components' periodic work, each
    (interval, step), run between the timers and recovery."""
    next_recovery = last_sla = 0.0
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
            if loop.time() >= next_recovery:
                started = loop.time()
                next_recovery = started + recovery_interval  # also when the round fails
                await pipeline.recover()
                if recoveries % _REPAIR_EVERY == 0:
                    await pipeline.store.desk.repair_index()
                recoveries += 1
                took = loop.time() - started
                metrics.RECOVERY_SECONDS.set(took)
                next_recovery = started + max(recovery_interval, took / RECOVERY_SHARE)
        except StoreUnavailable as exc:
            # Said once per outage by the Redis client (bot/storage/resp.py).
            log.debug("background loop: store unavailable: %s", exc)
        except Exception:
            log.exception("background loop failed; retrying")
        await asyncio.sleep(timer_interval)

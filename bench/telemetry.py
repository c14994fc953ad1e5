"""What metrics and structured logging cost per message: the instrumentation a reply goes
through (bot/telemetry), timed alone on one core.

Run: ``.venv/bin/python bench/telemetry.py [--rounds N]``. One reply that the flow answers
passes: the request middleware (request id, context binding, the route's latency histogram),
three stage timers (NLU, gate, store commit) with their ``perf_counter`` calls, the event's
counters from its audit entries, one gate verdict, two outbound record steps (reserved,
sent), the drain's context binding, and the DEBUG line's level check. Printed: microseconds
per message, and that against the service's CPU per message (``--message-us``; 380-530 µs in
README's bench/inbound.py figures) — issue 13's target is at most 5 %.
``bench/inbound.py`` measures the whole service with them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50_000)
    parser.add_argument("--message-us", type=float, default=450.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request
    from structlog.contextvars import bind_contextvars

    from bot.outbound.record import queued
    from bot.records import Outbound, audit_entry
    from bot.storage.base import Transition
    from bot.telemetry import endpoint, logs, metrics

    logs.configure("json", "INFO", stream=open(os.devnull, "w"))  # noqa: SIM115
    log = logging.getLogger("bot.pipeline")
    now = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    audit = [
        audit_entry(now, "inbound", provider="twilio", msg_id="SM1", text="明天还"),
        audit_entry(now, "understood", intent="promise_to_pay", intents=[], entities={}),
        audit_entry(now, "step", state="promised"),
        audit_entry(now, "send", template="promise_ack"),
    ]
    msg = Outbound(
        account_id="acc-1",
        phone="+8613800138000",
        text="好的，我们记下了",
        template="promise_ack",
        codes={},
        created_at=now,
    )
    reserved = queued(msg).moved("reserved", now, carrier="sandbox", reserved_at=now)
    steps = [Transition(reserved, None), Transition(reserved.moved("sent", now), 1)]

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def requests(n: int, wrapped: bool) -> float:
        app = web.Application()
        app.router.add_post("/webhooks/twilio", handler)
        request = make_mocked_request("POST", "/webhooks/twilio", app=app)
        request._match_info = await app.router.resolve(request)  # as aiohttp's server does
        started = time.perf_counter()
        for _ in range(n):
            if wrapped:
                await endpoint.observe(request, handler)
            else:
                await handler(request)
        return time.perf_counter() - started

    def message() -> None:
        started = time.perf_counter()
        metrics.NLU_SECONDS.observe(time.perf_counter() - started)
        started = time.perf_counter()
        metrics.GATE_SECONDS.observe(time.perf_counter() - started)
        metrics.gate_decision("send", ())
        bind_contextvars(account="acc-1")
        bind_contextvars(event="ev-1")
        started = time.perf_counter()
        metrics.STORE_SECONDS.observe(time.perf_counter() - started)
        metrics.events_committed("inbound", audit, 0.004)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("never")
        for t in steps:
            metrics.transition(t)

    n = args.rounds
    for _ in range(2000):
        message()
    started = time.perf_counter()
    for _ in range(n):
        message()
    per_message = (time.perf_counter() - started) / n * 1e6
    asyncio.run(requests(2000, True))
    bare = asyncio.run(requests(n, False))
    wrapped = asyncio.run(requests(n, True))
    per_request = (wrapped - bare) / n * 1e6
    total = per_message + per_request
    print(f"pipeline instrumentation  {per_message:6.1f} µs per message")
    print(f"request middleware        {per_request:6.1f} µs per request")
    print(
        f"total                     {total:6.1f} µs per message = "
        f"{total / args.message_us:.1%} of {args.message_us:.0f} µs (target ≤ 5 %)"
    )


if __name__ == "__main__":
    main()

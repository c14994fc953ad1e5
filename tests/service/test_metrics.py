"""/metrics: parsed by prometheus-client's own parser, protected, and its counters move as a
borrower's conversation runs (a reminder, replies, a stop, a handoff, a blocked message)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.context import PIPELINE
from intents import Understander
from tests.service.apphelpers import AUTH, account, client, daytime_clock, post_twilio
from tests.service.processes import free_port

pytestmark = pytest.mark.timeout(120)
TOKEN = "metrics-test-token"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels): what a Prometheus server would store."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(c: Any) -> Samples:
    r = await c.get("/metrics", headers=SCRAPE)
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    return parse(await r.text())


async def test_counters_move_as_a_conversation_runs(nlu: Understander) -> None:
    async with client(nlu, clock=daytime_clock(), metrics_token=TOKEN) as c:
        before = await scrape(c)
        r = await c.post("/api/accounts", json={"accounts": [account(71)]}, headers=AUTH)
        assert r.status == 200
        await c.app[PIPELINE].idle()
        phone = account(71)["phone"]
        for n, text in enumerate(["周五还1000", "我要人工客服", "以后别再给我发短信了"]):
            r = await post_twilio(c, phone, text, f"SM{n:032d}")
            assert r.status == 200
            await c.app[PIPELINE].idle()
        after = await scrape(c)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # The reminder: started, passed by the gate, sent by the sandbox carrier.
    assert moved("smsbot_events_total", kind="start") == 1
    assert moved("smsbot_gate_decisions_total", verdict="send", rule="") >= 1
    assert moved("smsbot_outbound_transitions_total", carrier="sandbox", state="sent") >= 1
    # The three replies, by provider and primary intent.
    assert moved("smsbot_events_total", kind="inbound") == 3
    assert moved("smsbot_inbound_messages_total", provider="twilio", intent="promise_to_pay") == 1
    assert moved("smsbot_inbound_messages_total", provider="twilio", intent="request_human") == 1
    assert moved("smsbot_inbound_messages_total", provider="twilio", intent="stop") == 1
    assert sum(v for (n, lb), v in after.items() if n == "smsbot_handoffs_total") > sum(
        v for (n, lb), v in before.items() if n == "smsbot_handoffs_total"
    )
    # Time per stage and per request, and the webhook's route by its pattern.
    assert moved("smsbot_stage_duration_seconds_count", stage="nlu") == 3
    assert moved("smsbot_stage_duration_seconds_count", stage="store") >= 4
    assert moved("smsbot_stage_duration_seconds_count", stage="gate") >= 1
    webhook = {"route": "/webhooks/twilio", "method": "POST", "status": "2xx"}
    assert moved("smsbot_http_request_duration_seconds_count", **webhook) == 3
    assert moved("smsbot_event_latency_seconds_count", kind="inbound") == 3
    # The process's own resources are there too.
    assert value(after, "process_resident_memory_bytes") > 0


async def test_a_blocked_message_is_counted_by_its_rule(nlu: Understander) -> None:
    # Outside the contact window a reminder is deferred by the window rule, not sent.
    from datetime import UTC, datetime

    from bot.clock import Clock

    night = Clock(datetime(2026, 11, 25, 15, 0, tzinfo=UTC) - datetime.now(UTC))  # 23:00 CST
    async with client(nlu, clock=night, metrics_token=TOKEN) as c:
        before = await scrape(c)
        r = await c.post("/api/accounts", json={"accounts": [account(72)]}, headers=AUTH)
        assert r.status == 200
        await c.app[PIPELINE].idle()
        after = await scrape(c)
    deferred = {
        labels: v - before.get((n, labels), 0.0)
        for (n, labels), v in after.items()
        if n == "smsbot_gate_decisions_total" and dict(labels)["verdict"] == "defer"
    }
    assert deferred and all(dict(lb)["rule"] for lb in deferred), deferred
    assert sum(deferred.values()) >= 1
    assert value(after, "smsbot_outbound_transitions_total", carrier="none", state="deferred") > (
        value(before, "smsbot_outbound_transitions_total", carrier="none", state="deferred")
    )


async def test_a_timer_is_counted_once_however_many_scans_find_it(nlu: Understander) -> None:
    """An integrator's trial: two services counted 476 fired timers for 300 (each scan counted
    what it found, the ticks de-duplicated away included). Counted where a timer fires."""
    from datetime import timedelta

    clock = daytime_clock()
    async with client(nlu, clock=clock, metrics_token=TOKEN) as c:
        pipeline = c.app[PIPELINE]
        r = await c.post("/api/accounts", json={"accounts": [account(73)]}, headers=AUTH)
        assert r.status == 200
        await pipeline.idle()
        before = await scrape(c)
        clock.advance(timedelta(days=2, minutes=1))  # the first reminder's 2-day timeout
        # Two scans a second apart before either tick is processed: what two processes see.
        assert await pipeline.fire_due_timers() == 1
        clock.advance(timedelta(seconds=1))
        assert await pipeline.fire_due_timers() == 1
        await pipeline.idle()
        after = await scrape(c)
    fired = value(after, "smsbot_timers_fired_total") - value(before, "smsbot_timers_fired_total")
    assert fired == 1


async def test_metrics_need_the_token(nlu: Understander) -> None:
    async with client(nlu, metrics_token=TOKEN) as c:
        assert (await c.get("/metrics")).status == 401
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert "Bearer" in (await wrong.json())["error"]
        assert (await c.get("/metrics", headers=AUTH)).status == 401  # the API key is not it
    async with client(nlu) as c:  # neither a token nor a port of their own: off, and why
        r = await c.get("/metrics", headers=SCRAPE)
        assert r.status == 403
        assert "SMSBOT_METRICS_TOKEN" in (await r.json())["error"]


async def test_metrics_port_serves_metrics_and_nothing_else(nlu: Understander) -> None:
    port = free_port()
    async with client(nlu, metrics_port=port) as c:
        assert (await c.get("/metrics")).status == 403  # not on the service's port
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                assert "smsbot_http_request_duration_seconds" in await r.text()
            async with s.get(f"http://127.0.0.1:{port}/api/accounts") as r:
                assert r.status == 404


async def test_request_id_is_kept_or_made(nlu: Understander) -> None:
    async with client(nlu) as c:
        r = await c.get("/healthz", headers={"X-Request-ID": "lb-4f2a9c01"})
        assert r.headers["X-Request-ID"] == "lb-4f2a9c01"
        r = await c.get("/healthz", headers={"X-Request-ID": "bad id\u202e"})
        # A phone number is no request id: ours would be masked, the caller's not.
        r2 = await c.get("/healthz", headers={"X-Request-ID": "13812345678"})
        assert r2.headers["X-Request-ID"] != "13812345678"
        made = r.headers["X-Request-ID"]
        assert made != "bad id\u202e" and made.isalnum()
        again = (await c.get("/healthz")).headers["X-Request-ID"]
        assert again != made and again[:8] == made[:8]  # this process's prefix, a new serial


def test_workers_metrics_are_summed(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (smsbot serve --workers), each process writes its own
    file and any of them answers for all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = textwrap.dedent(
        """
        import sys
        from bot.telemetry import metrics
        metrics.EVENTS.labels("inbound").inc(int(sys.argv[1]))
        metrics.sample_backlog({"timers": (int(sys.argv[1]), 1.5)}, 2)
        """
    )
    for n in ("3", "4"):
        subprocess.run([sys.executable, "-c", count, n], env=env, cwd=ROOT, check=True)
    show = "from bot.telemetry import endpoint; print(endpoint.exposition().body.decode())"
    out = subprocess.run(
        [sys.executable, "-c", show], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    samples = parse(out)
    assert value(samples, "smsbot_events_total", kind="inbound") == 7
    assert value(samples, "smsbot_backlog", queue="timers") in (3, 4)  # the latest sample

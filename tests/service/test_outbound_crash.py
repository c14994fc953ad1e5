"""kill -9 on the send path: real ``smsbot serve`` processes, a real Redis, a fake carrier.

The carrier (Alibaba Cloud's API, faked on loopback) records every message it accepts. A
service process is killed hard while messages are anywhere on their way — committed but not
gated, reserved, claimed, inside a slow provider call, answered but not yet stored — and a
fresh process is started on the same Redis. Afterwards:

- the carrier has each message **at most once** (and, where nothing else went wrong, exactly
  once): nothing is resent blindly, a send in doubt is reconciled with the carrier first;
- every message ends in a terminal state (``unknown`` only with the conversation handed to
  a person);
- the frequency ledger, the audit and the carrier agree.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.outbound.record import TERMINAL
from bot.storage import keys
from bot.storage.redis import RedisStore
from tests.outbound.fakecarrier import (
    ALIYUN_KEY_ID,
    ALIYUN_SECRET,
    FakeCarrier,
    flows_with_codes,
)
from tests.service.apphelpers import AUTH
from tests.service.conftest import RedisServer
from tests.service.processes import free_port, serve, wait_ready

pytestmark = pytest.mark.timeout(180)


def _daytime_zone() -> str:
    """A whole-hour zone where it is late morning now: the gate sends at once."""
    offset = (11 - datetime.now(UTC).hour + 12) % 24 - 12
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"


def _rows(first: int, n: int) -> list[dict[str, Any]]:
    zone = _daytime_zone()
    return [
        {
            "id": f"kill-{i:05d}",
            "name": "张三",
            "phone": f"+86139{i:08d}",
            "amount_due": "3200.00",
            "days_overdue": 5,
            "due_date": "2026-11-24",
            "tz": zone,
        }
        for i in range(first, first + n)
    ]


@pytest.fixture
async def carrier() -> AsyncIterator[FakeCarrier]:
    fake = FakeCarrier(hang_s=20.0, seed=7)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


class Service:
    """One ``smsbot serve`` after another on the same Redis, port and settings."""

    def __init__(self, redis_url: str, carrier: FakeCarrier, tmp: Path) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "service.log"
        self.env = {
            "SMSBOT_CONFIG": str(tmp / "none.yaml"),
            "SMSBOT_PROVIDER": "aliyun",
            "SMSBOT_ALIYUN_ACCESS_KEY_ID": ALIYUN_KEY_ID,
            "SMSBOT_ALIYUN_ACCESS_KEY_SECRET": ALIYUN_SECRET,
            "SMSBOT_ALIYUN_SIGN_NAME": "XX金融",
            "SMSBOT_ALIYUN_SMS_ENDPOINT": carrier.base_url,
            "SMSBOT_FLOWS_DIR": str(flows_with_codes(tmp)),
            # Fast clocks for a test: short calls and leases, quick reconciliation.
            "SMSBOT_SEND_TIMEOUT_S": "2",
            "SMSBOT_SEND_LEASE_S": "3",
            "SMSBOT_RECONCILE_AFTER_S": "0.5",
            "SMSBOT_RECONCILE_SETTLE_S": "1",
            "SMSBOT_SEND_BACKOFF_S": "0.2",
            "SMSBOT_SENDER_POLL_S": "0.2",
            "SMSBOT_RECOVERY_INTERVAL_S": "1",
            "SMSBOT_LOCK_TTL_MS": "2000",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.proc = serve(self.redis_url, self.port, self.log, **self.env)
        await wait_ready(session, self.base)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    async def add(self, session: aiohttp.ClientSession, rows: list[dict[str, Any]]) -> None:
        body = {"accounts": rows, "start": True}
        async with session.post(self.base + "/api/accounts", json=body, headers=AUTH) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["errors"] == []


async def _settled(store: RedisStore, ids: list[str], within: float = 60.0) -> list[Any]:
    """Every account's records, once none is left outside a terminal state (or ``sent``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        records = [r for a in ids for r in await store.outbound_records(a)]
        waiting = [r for r in records if r.state not in TERMINAL | {"sent"}]
        if (records and not waiting) or loop.time() > deadline:
            return records
        await asyncio.sleep(0.2)


async def _check(store: RedisStore, carrier: FakeCarrier, ids: list[str]) -> Counter[str]:
    records = await _settled(store, ids)
    states = Counter(r.state for r in records)
    assert len(records) == len(ids), states  # one first reminder each, none lost
    at_carrier = Counter(s.message_id for s in carrier.sent)
    twice = {m: n for m, n in at_carrier.items() if n > 1}
    assert twice == {}, f"sent more than once: {twice}"
    for r in records:
        if r.state not in {"sent", "unknown"}:
            # What a reader needs to find out why a message is still held (once: a message
            # back at the gate deferred to the next day by its own charge, which a kill had
            # left in the ledger; tests/service/test_regate.py).
            audit = [
                (e.at.isoformat(), e.kind, e.detail) for e in await store.read_audit(r.account_id)
            ]
            due = await store._pipe.one("ZSCORE", keys.DUE, r.account_id)
            raise AssertionError(
                f"{r.id} of {r.account_id} is {r.state} (code {r.code}, version {r.version},"
                f" attempts {r.attempts}), not_before {r.message.not_before}, due index {due!r},"
                f" now {datetime.now(UTC).isoformat()}; last audit entries: {audit[-12:]}"
            )
        # "sent" is recorded only for what left; what left is recorded.
        assert (r.id in at_carrier) == (r.state == "sent") or r.state == "unknown"
        ledger = await store.send_history(r.message.phone, datetime(2000, 1, 1, tzinfo=UTC))
        assert [e.message_id for e in ledger] == [r.id]  # charged once, never released
        audit = await store.read_audit(r.account_id, 10_000)
        sent = [e for e in audit if e.kind == "sent" and e.detail.get("message_id") == r.id]
        assert len(sent) == (1 if r.state == "sent" else 0)
        if r.state == "unknown":  # a person is told
            assert any(e.kind == "handoff" for e in audit)
    return states


async def test_a_slow_carrier_and_a_kill_lose_no_first_reminder(
    redis_url: str, carrier: FakeCarrier, tmp_path: Path
) -> None:
    """The reported case: a carrier that takes 3 s, 20 accounts started, the service killed
    a second later. Before: 20 of 20 first reminders lost. Now: each arrives exactly once."""
    service = Service(redis_url, carrier, tmp_path)
    store = RedisStore.from_url(redis_url)
    rows = _rows(0, 20)
    try:
        async with aiohttp.ClientSession() as session:
            await service.start(session)
            carrier.latency_s, carrier.record_first = 3.0, True
            await service.add(session, rows)
            await asyncio.sleep(1.0)
            in_flight = len(carrier.sent)
            service.kill()  # while the carrier holds every call
            carrier.latency_s = 0.0
            await service.start(session)
            states = await _check(store, carrier, [r["id"] for r in rows])
        assert in_flight > 0  # the kill did hit calls in flight
        assert states == Counter({"sent": 20})
        assert len(carrier.sent) == 20
    finally:
        service.stop()
        await store.close()


async def test_repeated_kills_with_a_failing_carrier_send_each_message_at_most_once(
    redis_url: str, carrier: FakeCarrier, tmp_path: Path
) -> None:
    """Accounts keep arriving while the service is killed at random moments, six times, and
    the carrier fails 30 % of calls (5xx, 429, timeouts before and after accepting, dropped
    connections) and answers slowly: every point of the send path is hit by some kill."""
    service = Service(redis_url, carrier, tmp_path)
    store = RedisStore.from_url(redis_url)
    rng = random.Random(11)
    ids: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            await service.start(session)
            carrier.latency_s, carrier.fail_rate, carrier.hang_s = 0.3, 0.3, 5.0
            for kill in range(6):
                for batch in range(3):
                    rows = _rows(100 * kill + 10 * batch, 10)
                    await service.add(session, rows)
                    ids += [r["id"] for r in rows]
                    await asyncio.sleep(rng.uniform(0.05, 0.4))
                service.kill()
                await service.start(session)
            carrier.fail_rate = 0.0
            states = await _check(store, carrier, ids)
        assert sum(states.values()) == len(ids) == 180
        # The carrier never said "cannot tell": nothing should be left unknown.
        assert states == Counter({"sent": 180})
        assert len({s.message_id for s in carrier.sent}) == 180
    finally:
        service.stop()
        await store.close()


async def test_a_redis_crash_mid_sending_loses_and_repeats_nothing(
    carrier: FakeCarrier, tmp_path: Path
) -> None:
    """Redis (AOF, fsync on every write) is killed while the service sends through a slow
    carrier, and restarted a second later on its file: outcomes that could not be stored are
    reconciled with the carrier; nothing is lost, nothing reaches the carrier twice."""
    redis = RedisServer(tmp_path / "redis", aof=True)
    (tmp_path / "redis").mkdir()
    redis.start()
    service = Service(redis.url, carrier, tmp_path)
    rows = _rows(500, 40)
    try:
        async with aiohttp.ClientSession() as session:
            await service.start(session)
            carrier.latency_s, carrier.record_first = 0.5, True
            await service.add(session, rows)
            await asyncio.sleep(0.3)
            redis.kill()  # calls in flight: their outcomes have nowhere to go
            await asyncio.sleep(1.0)
            redis.start()
            carrier.latency_s = 0.0
            store = RedisStore.from_url(redis.url)
            try:
                states = await _check(store, carrier, [r["id"] for r in rows])
                audits = [await store.read_audit(r["id"]) for r in rows]
            finally:
                await store.close()
        assert states == Counter({"sent": 40})
        # The crash did strand outcomes: some sends were settled by asking the carrier.
        assert sum(e.kind == "reconcile" for audit in audits for e in audit) > 0
        assert len(carrier.sent) == 40
    finally:
        service.stop()
        redis.stop()

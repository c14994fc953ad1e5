"""Log lines: JSON, masked, carrying the request id from the webhook into the pipeline, and a
Redis outage said once per change of state, not once per request."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from bot.context import PIPELINE
from bot.privacy import mask_text
from bot.telemetry import logs
from intents import Understander
from tests.service.apphelpers import (
    AUTH,
    account,
    client,
    daytime_clock,
    post_twilio,
)
from tests.service.conftest import RedisServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The service's log configuration, writing to a buffer; the test run's own after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    logs.configure("json", "DEBUG", stream=out)
    yield out
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_lines_are_json_and_personal_numbers_are_masked(lines: io.StringIO) -> None:
    log = logging.getLogger("bot.somewhere")
    log.info("reply from %s", "+8613812345678")
    try:
        raise ValueError("card 6222021234567890123 of 13912345678 refused")
    except ValueError:
        log.exception("failed for id 11010519491231002X")
    log.warning("plain", extra={"phone": "13800138000"})
    log.info("nested", extra={"request_header": {"Referer": "http://x/?tel=13912345678"}})
    first, second, third, fourth = records(lines)
    assert first["event"] == "reply from +86138****5678"
    assert (first["level"], first["logger"]) == ("info", "bot.somewhere")
    assert first["timestamp"].endswith("Z")
    assert "1101" in second["event"] and "11010519491231002X" not in second["event"]
    assert "6222021234567890123" not in second["exception"]
    assert "13912345678" not in second["exception"] and "139****5678" in second["exception"]
    assert "ValueError" in second["exception"]
    assert third["phone"] == "138****8000"
    assert fourth["request_header"]["Referer"] == "http://x/?tel=139****5678"  # however deep
    assert first["pid"] == os.getpid()  # several workers write one stream


def test_console_format_masks_too(lines: io.StringIO) -> None:
    out = io.StringIO()
    logs.configure("console", "INFO", stream=out)
    logging.getLogger("bot.x").info("to 13812345678")
    assert "138****5678" in out.getvalue() and "13812345678" not in out.getvalue()


async def test_request_id_reaches_the_pipeline(nlu: Understander, lines: io.StringIO) -> None:
    async with client(nlu, clock=daytime_clock()) as c:
        r = await c.post("/api/accounts", json={"accounts": [account(81)]}, headers=AUTH)
        assert r.status == 200
        await c.app[PIPELINE].idle()
        r = await post_twilio(
            c,
            account(81)["phone"],
            "明天还",
            "SM" + "8" * 32,
            headers={"X-Request-ID": "req-from-the-lb-01"},
        )
        assert r.status == 200
        await c.app[PIPELINE].idle()
        # An unknown number's reply is logged in the request itself.
        await post_twilio(c, "+8613900000001", "你们是谁", "SM" + "9" * 32)
    found = records(lines)
    committed = [
        r for r in found if r["event"].startswith("event ") and "(inbound) committed" in r["event"]
    ]
    assert committed, found
    assert committed[-1]["request_id"] == "req-from-the-lb-01"
    assert committed[-1]["account"] == "acc-0081"
    assert committed[-1]["event"].split()[1] == committed[-1]["event_id"]  # an id, unmasked
    unknown = [r for r in found if "unknown number" in r["event"]]
    assert unknown and unknown[0]["request_id"] != "req-from-the-lb-01"
    assert "+86139****0001" in unknown[0]["event"]
    assert "13900000001" not in json.dumps(found, ensure_ascii=False)


async def test_a_redis_outage_is_one_warning_each_way(
    nlu: Understander, own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client(nlu, redis_url=own_redis_server.url) as c:
        await c.post(
            "/api/accounts", json={"accounts": [account(82)], "start": False}, headers=AUTH
        )
        own_redis_server.stop()
        for n in range(5):
            r = await post_twilio(c, account(82)["phone"], "明天还", f"SM{n:032d}")
            assert r.status == 503
        own_redis_server.start()
        for _ in range(20):
            r = await c.post(
                "/api/accounts", json={"accounts": [account(82)], "start": False}, headers=AUTH
            )
            if r.status == 200:
                break
        assert r.status == 200
        await c.post(
            "/api/accounts", json={"accounts": [account(83)], "start": False}, headers=AUTH
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    down = [m for m in warnings if "is unavailable" in m]
    up = [m for m in warnings if "available again" in m]
    assert len(down) == 1, warnings
    assert len(up) == 1, warnings


def test_our_ids_are_not_read_as_card_numbers() -> None:
    # A message id with a run of zeros stays whole (it is what an operator greps for); a phone
    # beside it, or glued to text that only looks like an id, is still masked.
    mid = "25b8ec041ff8d3ee0000000000000003"
    assert mask_text(f"message {mid} to +8613812345678") == f"message {mid} to +86138****5678"
    assert "13812345678" not in mask_text("a" * 40 + "13812345678")
    assert "13812345678" not in mask_text("ab12" + "13812345678" + "cdef")
    assert mask_text("卡号6222021234567890123") == "卡号6222***********0123"

"""A paused service says so, and the banner names the store a URL really is (from an
integrator's trial: the pause was silent, and a cluster was called `redis`)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.storage.connect import store_kind
from intents import Understander
from tests.service.apphelpers import AUTH, account, client, conversation, post_twilio


async def test_a_paused_service_says_so_and_keeps_replies_unprocessed(
    nlu: Understander, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        async with client(nlu, pause_processing=True) as c:
            await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
            r = await post_twilio(c, account(1)["phone"], "明天还", "SM" + "a" * 32)
            assert r.status == 200  # accepted and stored
            await asyncio.sleep(0.3)
            conv = await conversation(c, "acc-0001")
            assert conv["state"] != "promised"
    paused = [r for r in caplog.records if "processing paused" in r.getMessage()]
    assert len(paused) == 1 and paused[0].levelno == logging.WARNING


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (None, "memory (data is lost on exit)"),
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://cache.example:6380/0", "redis"),
        ("redis+cluster://10.0.0.1:7000,10.0.0.2:7000", "redis cluster"),
        ("redis+sentinel://10.0.0.1:26379/mymaster", "redis sentinel"),
    ],
)
def test_the_banner_names_the_store(url: str | None, kind: str) -> None:
    assert store_kind(url) == kind

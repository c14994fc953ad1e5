"""The service with real carrier adapters pointed at the fake carrier (tests/outbound).

``service()`` runs the app on a loopback port that is also its ``public_url``: the fake then
posts Twilio's status callbacks to exactly the URL our send gave it, signed over that URL as
Twilio signs them, and Alibaba Cloud's and Tencent Cloud's receipt pushes go to the path-token
URLs an operator would register. The fake runs on the service's clock (see :func:`fake_on`).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.clock import Clock
from bot.context import PIPELINE
from bot.storage.base import Store
from intents import Understander
from tests.outbound.fakecarrier import (
    ALIYUN_KEY_ID,
    ALIYUN_SECRET,
    TENCENT_APP_ID,
    TENCENT_SECRET_ID,
    TENCENT_SECRET_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeCarrier,
)
from tests.service.apphelpers import ALIYUN_TOKEN, AUTH, conversation, settings

SIGN = "XX金融"
TENCENT_TOKEN = "tencent-path-token"
FROM = "+15550001111"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def service(
    nlu: Understander, store: Store | None, clock: Clock, **overrides: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    """The app on a loopback port that is also its public URL (Twilio signs that URL)."""
    port = _free_port()
    public = f"http://127.0.0.1:{port}"
    app = create_app(settings(public_url=public, **overrides), store=store, nlu=nlu, clock=clock)
    async with TestClient(TestServer(app, host="127.0.0.1", port=port)) as c:
        yield c


def fake_on(clock: Clock, **options: Any) -> FakeCarrier:
    """A fake carrier living on the service's clock, as a provider lives on the same time as we
    do: its records are dated as our reservations are (reconciliation compares the two). The
    carriers sign with that clock too, so the fake does not hold request times to wall time."""
    return FakeCarrier(now=clock.now, check_time=False, **options)


@asynccontextmanager
async def running(fake: FakeCarrier) -> AsyncIterator[FakeCarrier]:
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def aliyun_settings(fake: FakeCarrier, flows: Path) -> dict[str, Any]:
    return {
        "provider": "aliyun",
        "aliyun_access_key_id": ALIYUN_KEY_ID,
        "aliyun_access_key_secret": ALIYUN_SECRET,
        "aliyun_sign_name": SIGN,
        "aliyun_sms_endpoint": fake.base_url,
        "aliyun_path_token": ALIYUN_TOKEN,
        "flows_dir": flows,
    }


def tencent_settings(fake: FakeCarrier, flows: Path) -> dict[str, Any]:
    return {
        "provider": "tencent",
        "tencent_secret_id": TENCENT_SECRET_ID,
        "tencent_secret_key": TENCENT_SECRET_KEY,
        "tencent_sms_app_id": TENCENT_APP_ID,
        "tencent_sign_name": SIGN,
        "tencent_sms_endpoint": fake.base_url,
        "tencent_path_token": TENCENT_TOKEN,
        "flows_dir": flows,
    }


def twilio_settings(fake: FakeCarrier) -> dict[str, Any]:
    return {
        "provider": "twilio",
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,  # the fake's: it signs callbacks with it
        "twilio_from": FROM,
        "twilio_api_url": fake.base_url,
    }


async def start(c: TestClient[Any, Any], *rows: dict[str, Any]) -> None:
    r = await c.post("/api/accounts", json={"accounts": list(rows), "start": True}, headers=AUTH)
    assert r.status == 200, await r.text()
    assert (await r.json())["errors"] == []
    await c.app[PIPELINE].idle()


async def messages(c: TestClient[Any, Any], account_id: str) -> list[dict[str, Any]]:
    return list((await conversation(c, account_id))["messages"])


async def only_message(c: TestClient[Any, Any], account_id: str) -> dict[str, Any]:
    (message,) = await messages(c, account_id)
    return message


def sends(fake: FakeCarrier) -> list[str]:
    """The send requests the fake received (accepted or not)."""
    return [s.action for s in fake.seen if s.action in ("SendSms", "create")]

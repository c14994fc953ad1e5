"""Running the service in a test: settings with test secrets, an aiohttp test client, signers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.clock import Clock
from bot.settings import Settings, load_settings
from bot.storage.base import Store
from intents import Understander

API_KEY = "test-api-key"
TWILIO_TOKEN = "twilio-test-token"
GENERIC_SECRET = "generic-test-secret"
ALIYUN_TOKEN = "aliyun-path-token"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "api_key": API_KEY,
        "twilio_auth_token": TWILIO_TOKEN,
        "generic_secret": GENERIC_SECRET,
        "aliyun_path_token": ALIYUN_TOKEN,
        "tencent_allowed_ips": ["127.0.0.1/32", "::1"],
        "public_url": "https://sms.example.cn",
        "timer_interval_s": 0.05,
    }
    base.update(overrides)
    return load_settings(**base)


@asynccontextmanager
async def client(
    nlu: Understander, store: Store | None = None, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings(**overrides), store=store, nlu=nlu, clock=clock)
    async with TestClient(TestServer(app)) as c:
        yield c


def daytime_clock() -> Clock:
    """10:00 in Shanghai on a fixed weekday, going on from there: inside the contact window
    whatever the hour the tests run at (tests that expect a send must not depend on it)."""
    return Clock(datetime(2026, 11, 25, 2, 0, tzinfo=UTC) - datetime.now(UTC))


def account(i: int = 1, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"acc-{i:04d}",
        "name": "张三",
        "phone": f"+86138000{i:05d}",
        "amount_due": "3200.00",
        "days_overdue": 5,
        "due_date": "2026-11-24",
    }
    row.update(extra)
    return row


def twilio_form(phone: str, text: str, sid: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "To": "+15550000000",
        "Body": text,
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


def twilio_signature(url: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    data = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


async def post_twilio(
    c: TestClient[Any, Any],
    phone: str,
    text: str,
    sid: str,
    *,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    form = twilio_form(phone, text, sid)
    sig = signature or twilio_signature("https://sms.example.cn/webhooks/twilio", form)
    return await c.post(
        "/webhooks/twilio",
        data=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sig,
            **(headers or {}),
        },
    )


def generic_request(
    msg_id: str, phone: str, text: str, ts: int | None = None, secret: str = GENERIC_SECRET
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": msg_id,
            "from": phone,
            "to": "10690000",
            "text": text,
            "sent_at": "2026-12-02T10:00:00+08:00",
        },
        ensure_ascii=False,
    ).encode()
    ts = int(time.time()) if ts is None else ts
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Smsbot-Timestamp": str(ts),
        "X-Smsbot-Signature": sig,
    }


async def conversation(c: TestClient[Any, Any], account_id: str) -> dict[str, Any]:
    r = await c.get(f"/api/conversations/{account_id}", headers=AUTH)
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


def borrower_texts(conv: dict[str, Any]) -> list[str]:
    return [e["detail"]["text"] for e in conv["transcript"] if e["kind"] == "inbound"]

"""No 500 from bad bytes (issue 16, item 15): every route answers a 4xx with a reason to a
body that is not UTF-8, a non-ASCII Authorization header, and bad percent-escapes in its path
and query; nothing is logged at ERROR (anyone could otherwise flood the log)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.storage.base import Store
from intents import Understander
from tests.service.apphelpers import (
    ALIYUN_TOKEN,
    API_KEY,
    AUTH,
    GENERIC_SECRET,
    account,
    client,
    post_twilio,
)

BAD_BODY = b"From=%2B8613800000001&Body=\xff\xfe\x80\xc3(&MessageSid=SM1"
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=no-such-codec",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/json",
    "application/json; charset=no-such-codec",
    "text/plain",
    "multipart/form-data; boundary=x",
]
# A raw header value: UTF-8 Chinese, a Latin-1 byte, and bytes that are no encoding at all.
BAD_AUTH = [
    "Bearer 密钥".encode(),
    b"Bearer \xff\xfe",
    b"Bearer " + API_KEY.encode() + b"\xe9",
]
PATH_VALUES = ["%ff", "%ED%A0%80", "%00", "a%2Fb"]
_OPEN = {"/api/openapi.json", "/api/console/login"}


def _routes(c: TestClient[Any, Any]) -> list[tuple[str, str]]:
    found = []
    for route in c.app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path:
            found.append((route.method, path))
    return found


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


async def _raw(c: TestClient[Any, Any], request: bytes) -> int:
    """Status of a request sent byte for byte (clients refuse to send such headers)."""
    reader, writer = await asyncio.open_connection(c.host, c.port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return int(status_line.split()[1])


def _request(method: str, path: str, headers: dict[str, bytes], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: sms.example.cn"]
    lines += [k.encode() + b": " + v for k, v in headers.items()]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    caplog.set_level(logging.WARNING)
    return caplog.records


async def test_no_route_answers_500_to_bad_bytes(
    nlu: Understander, store: Store, errors: list[logging.LogRecord]
) -> None:
    async with client(nlu, store=store, demo=True, tencent_path_token="tencent-tok") as c:
        routes = _routes(c)
        assert len(routes) >= 20  # every webhook, the API and the simulator
        seen: dict[tuple[str, str, str], int] = {}
        for method, path in routes:
            url = _fill(path, ALIYUN_TOKEN if "aliyun" in path else "tencent-tok")
            auth = f"Bearer {API_KEY}".encode()
            if method == "POST":
                for ctype in CONTENT_TYPES:
                    headers = {"Content-Type": ctype.encode(), "Authorization": auth}
                    status = await _raw(c, _request(method, url, headers, BAD_BODY))
                    seen[(method, url, ctype)] = status
            for value in BAD_AUTH:
                status = await _raw(c, _request(method, url, {"Authorization": value}))
                seen[(method, url, repr(value))] = status
                # Every API route wants credentials, but the two that take none: the document
                # and the console's sign-in (it answers the empty body).
                if path.startswith("/api/") and path not in _OPEN:
                    assert status == 401, (method, url, value)
            for value in PATH_VALUES:
                bad = _fill(path, value) + "?limit=%ff&ref=%ED%A0%80"
                status = await _raw(c, _request(method, bad, {"Authorization": auth}))
                seen[(method, bad, "path")] = status
        broken = {k: v for k, v in seen.items() if v >= 500}
        assert not broken
        form = "application/x-www-form-urlencoded"
        for url in ["/webhooks/twilio", "/webhooks/twilio/status"]:
            assert seen[("POST", url, form)] == 400
            assert seen[("POST", url, form + "; charset=no-such-codec")] == 400
        for url in [f"/webhooks/aliyun/{ALIYUN_TOKEN}", "/webhooks/tencent/tencent-tok"]:
            assert seen[("POST", url, "application/json")] == 400
        assert any(v == 400 for v in seen.values())
    assert not [r for r in errors if r.levelno >= logging.ERROR], [
        r.getMessage() for r in errors if r.levelno >= logging.ERROR
    ]


def _signed_generic(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()  # ensure_ascii: a lone surrogate travels as \ud800
    ts = int(time.time())
    sig = hmac.new(GENERIC_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Smsbot-Timestamp": str(ts),
        "X-Smsbot-Signature": sig,
    }


async def test_lone_surrogates_in_json_are_refused_or_read_never_500(
    nlu: Understander, store: Store, errors: list[logging.LogRecord]
) -> None:
    lone = "\ud800"
    async with client(nlu, store=store, demo=True) as c:
        r = await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        assert r.status == 200
        phone = account(1)["phone"]
        statuses = []
        for payload in [
            {"id": "m1", "from": phone, "text": f"明天还{lone}"},
            {"id": f"m{lone}", "from": phone, "text": "好的"},
            {"id": "m2", "from": phone + lone, "text": "好的"},
        ]:
            body, headers = _signed_generic(payload)
            statuses.append((await c.post("/webhooks/generic", data=body, headers=headers)).status)
        aliyun = json.dumps([{"phone_number": phone, "content": lone, "sequence_id": 7}])
        statuses.append(
            (await c.post(f"/webhooks/aliyun/{ALIYUN_TOKEN}", data=aliyun.encode())).status
        )
        bad_rows = json.dumps({"accounts": [account(2, name=lone), account(3, id=lone)]})
        r = await c.post("/api/accounts", data=bad_rows.encode(), headers=AUTH)
        statuses.append(r.status)
        pay = json.dumps(
            {
                "account_id": "acc-0001",
                "amount": "1.00",
                "paid_at": "2026-12-02T10:00:00+08:00",
                "reference": lone,
            }
        )
        statuses.append((await c.post("/api/payments", data=pay.encode(), headers=AUTH)).status)
        reply = json.dumps({"account_id": "demo-0001", "text": f"明天还{lone}"})
        statuses.append((await c.post("/simulator/api/reply", data=reply.encode())).status)
        r = await c.get(f"/api/conversations/{account(1)['id']}", headers=AUTH)
        statuses.append(r.status)
        assert all(s < 500 for s in statuses), statuses
    assert not [r for r in errors if r.levelno >= logging.ERROR], [
        r.getMessage() for r in errors if r.levelno >= logging.ERROR
    ]


async def test_a_twilio_form_with_a_bad_escaped_byte_is_refused_like_the_generic_webhook(
    nlu: Understander, store: Store
) -> None:
    """An integrator's trial: %FF in a Twilio form was read as U+FFFD and accepted, where the
    generic webhook refuses a body that is not UTF-8. Both refuse it now; a real U+FFFD (sent
    escaped as its UTF-8 bytes) is still a character like any other."""
    async with client(nlu, store=store) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        body = b"From=%2B8613800000001&Body=%FF%FE%E6%98%8E&MessageSid=SM" + b"1" * 32
        r = await c.post(
            "/webhooks/twilio",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status == 400
        assert "not valid UTF-8" in await r.text()
        r = await post_twilio(c, account(1)["phone"], "好的\ufffd", "SM" + "2" * 32)
        assert r.status == 200

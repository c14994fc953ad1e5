"""Alibaba Cloud adapter: the signature equals the official SDK's, every outcome path against
the fake carrier, reconciliation through QuerySendDetails, and the SmsReport parser."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from alibabacloud_dysmsapi20170525 import models as dysms_models  # type: ignore[import-untyped]
from alibabacloud_dysmsapi20170525.client import (  # type: ignore[import-untyped]
    Client as DysmsClient,
)
from alibabacloud_tea_openapi.utils import Utils as OpenApiUtils  # type: ignore[import-untyped]
from alibabacloud_tea_openapi.utils_models import Config  # type: ignore[import-untyped]
from darabonba.request import DaraRequest  # type: ignore[import-untyped]
from darabonba.runtime import RuntimeOptions  # type: ignore[import-untyped]
from fakecarrier import (
    ALIYUN_KEY_ID,
    ALIYUN_SECRET,
    OFFLINE,
    PHONE,
    SHORT_TIMEOUT_S,
    FakeCarrier,
    Sent,
    closed_port,
    json_values,
    message,
    outcome_of,
    receipt_items,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.outbound.carriers.aliyun import AliyunCarrier, aliyun_phone, parse_reports
from bot.outbound.carriers.base import Receipt
from bot.transport.inbound import WebhookError

SIGN = "测试签名"
FIXED_NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def carrier(session: aiohttp.ClientSession, endpoint: str, **kw: Any) -> AliyunCarrier:
    options: dict[str, Any] = {
        "access_key_id": ALIYUN_KEY_ID,
        "access_key_secret": ALIYUN_SECRET,
        "sign_name": SIGN,
        "endpoint": endpoint,
        "timeout_s": 2.0,
    }
    options.update(kw)
    return AliyunCarrier(session, **options)


# --- the signature equals the official SDK's -----------------------------------------------------


def _sdk_authorization(
    method: str, path: str, query: dict[str, str], headers: dict[str, str]
) -> str:
    request = DaraRequest()
    request.method = method
    request.pathname = path
    request.query = query
    request.headers = headers
    payload = hashlib.sha256(b"").hexdigest()
    auth: str = OpenApiUtils.get_authorization(
        request, "ACS3-HMAC-SHA256", payload, ALIYUN_KEY_ID, ALIYUN_SECRET
    )
    return auth


@pytest.mark.parametrize(
    "msg",
    [
        message(),
        # Characters that percent-encoding must get right: space, +, *, ~, /, =, &, emoji.
        message(id="a b+c*d~e/f=g&h", params={"k": "1 + 1 = 2 ~ 50% * 🙂 / &"}),
        message(phone="+85261234567", params={}),
    ],
)
def test_signature_equals_the_sdks(msg: Any) -> None:
    adapter = carrier(
        OFFLINE, "https://dysmsapi.aliyuncs.com", now=lambda: FIXED_NOW, nonce=lambda: "n-1"
    )
    params = adapter.send_params(msg)
    url, headers = adapter.signed("SendSms", params)
    signed = {k: v for k, v in headers.items() if k not in ("Authorization", "Accept")}
    assert signed["x-acs-date"] == "2024-05-06T07:08:09Z"
    assert headers["Authorization"] == _sdk_authorization("POST", "/", params, signed)
    # The wire query decodes to exactly the signed parameters.
    assert dict(url.query) == params


def test_params_equal_the_sdks_request_model() -> None:
    msg = message()
    ours = carrier(OFFLINE, "https://dysmsapi.aliyuncs.com").send_params(msg)
    request = dysms_models.SendSmsRequest(
        phone_numbers="13800138000",
        sign_name=SIGN,
        template_code="SMS_123456789",
        template_param=json.dumps(msg.params, ensure_ascii=False),
        out_id=msg.id,
    )
    sdk = {k: v for k, v in request.to_map().items() if v is not None}
    assert ours == sdk
    assert json.loads(ours["TemplateParam"]) == msg.params


async def test_sdk_and_adapter_requests_agree_at_the_fake(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    msg = message()
    host = fake.base_url.removeprefix("http://")
    client = DysmsClient(
        Config(
            access_key_id=ALIYUN_KEY_ID,
            access_key_secret=ALIYUN_SECRET,
            endpoint=host,
            protocol="http",
        )
    )
    request = dysms_models.SendSmsRequest(
        phone_numbers=aliyun_phone(msg.phone),
        sign_name=SIGN,
        template_code=msg.codes["aliyun"],
        template_param=json.dumps(msg.params, ensure_ascii=False),
        out_id=msg.id,
    )
    response = await asyncio.to_thread(client.send_sms_with_options, request, RuntimeOptions())
    assert response.body.code == "OK"
    sdk_seen = fake.seen[-1]
    assert sdk_seen.accepted  # the fake's V3 verifier accepts the official SDK's signature

    outcome = await carrier(session, fake.base_url).send(msg)
    assert outcome.status == "sent"
    ours = fake.seen[-1]
    assert ours.accepted
    assert (ours.method, ours.path) == (sdk_seen.method, sdk_seen.path) == ("POST", "/")
    assert dict(ours.query) == dict(sdk_seen.query)
    assert ours.body == sdk_seen.body == b""
    for name in ("x-acs-action", "x-acs-version", "x-acs-content-sha256"):
        assert ours.headers[name] == sdk_seen.headers[name]
    ours_signed = set(
        ours.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    )
    sdk_signed = set(
        sdk_seen.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    )
    assert ours_signed <= sdk_signed
    assert [r.message_id for r in fake.sent] == [msg.id, msg.id]


def test_phone_format() -> None:
    assert aliyun_phone("+8613800138000") == "13800138000"
    assert aliyun_phone("+85261234567") == "85261234567"
    assert aliyun_phone("+14155550100") == "14155550100"


# --- classification against the fake carrier ---------------------------------------------------


async def test_success(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    outcome = await carrier(session, fake.base_url).send(message())
    assert outcome.status == "sent"
    [record] = fake.sent
    assert outcome.provider_id == record.provider_id
    assert (record.message_id, record.phone, record.template, record.sign) == (
        "out-0001",
        PHONE,
        "SMS_123456789",
        SIGN,
    )
    assert record.params == message().params


async def test_no_template_code(session: aiohttp.ClientSession) -> None:
    adapter = carrier(session, f"http://127.0.0.1:{closed_port()}")
    msg = message(codes={"tencent": "1"})
    assert adapter.check(msg) and "codes.aliyun" in adapter.check(msg)  # type: ignore[operator]
    outcome = await adapter.send(msg)
    assert (outcome.status, outcome.code) == ("failed", "NO_TEMPLATE_CODE")
    assert adapter.check(message()) is None


async def test_throttled_is_retry(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    fake.next_modes.append("429")
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code, outcome.retry_after_s) == (
        "retry",
        "Throttling.User",
        1.0,
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", "retry"),
        ("isv.DAY_LIMIT_CONTROL", "retry"),
        ("Throttling.Api", "retry"),
        ("Throttling.Whatever", "retry"),
        ("isp.SYSTEM_ERROR", "ambiguous"),
        ("isv.SMS_TEMPLATE_ILLEGAL", "failed"),
        ("isv.BLACK_KEY_CONTROL_LIMIT", "failed"),
        ("isv.SOMETHING_NEW", "failed"),
    ],
)
async def test_code_table(
    fake: FakeCarrier, session: aiohttp.ClientSession, code: str, status: str
) -> None:
    fake.error_codes[PHONE] = code
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code) == (status, code)
    assert not outcome.opted_out and not outcome.invalid_number


async def test_template_error_says_configuration(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    fake.error_codes[PHONE] = "isv.SMS_TEMPLATE_ILLEGAL"
    outcome = await carrier(session, fake.base_url).send(message())
    assert outcome.detail and outcome.detail.startswith("configuration")


async def test_server_error_is_ambiguous(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    fake.next_modes.append("500")
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code) == ("ambiguous", "InternalError")


@pytest.mark.parametrize(
    ("mode", "recorded"),
    [("timeout", True), ("timeout_before", False), ("drop", True), ("drop_before", False)],
)
async def test_no_answer_after_the_request_is_ambiguous(
    fake: FakeCarrier, session: aiohttp.ClientSession, mode: Any, recorded: bool
) -> None:
    fake.next_modes.append(mode)
    outcome = await carrier(session, fake.base_url, timeout_s=SHORT_TIMEOUT_S).send(message())
    assert outcome.status == "ambiguous"
    assert bool(fake.sent) is recorded


async def test_connection_refused_is_retry(session: aiohttp.ClientSession) -> None:
    outcome = await carrier(session, f"http://127.0.0.1:{closed_port()}").send(message())
    assert (outcome.status, outcome.code) == ("retry", "CONNECT_ERROR")


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"access_key_secret": "wrong"}, "SignatureDoesNotMatch"),
        ({"access_key_id": "LTAI-unknown"}, "InvalidAccessKeyId.NotFound"),
    ],
)
async def test_bad_credentials_fail_as_configuration(
    fake: FakeCarrier, session: aiohttp.ClientSession, override: dict[str, str], code: str
) -> None:
    outcome = await carrier(session, fake.base_url, **override).send(message())
    assert (outcome.status, outcome.code) == ("failed", code)
    assert outcome.detail and outcome.detail.startswith("configuration")
    assert fake.sent == []


async def test_reused_nonce_is_retry(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    adapter = carrier(session, fake.base_url, nonce=lambda: "same-nonce")
    assert (await adapter.send(message())).status == "sent"
    outcome = await adapter.send(message(id="out-0002"))
    assert (outcome.status, outcome.code) == ("retry", "SignatureNonceUsed")


async def test_invalid_number(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    fake.permanent[PHONE] = "invalid_number"
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code, outcome.invalid_number) == (
        "failed",
        "isv.MOBILE_NUMBER_ILLEGAL",
        True,
    )


async def test_opted_out_shows_in_reconciliation_and_receipts(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    # Aliyun accepts the send and reports the unsubscribe asynchronously.
    start = datetime.now(UTC) - timedelta(seconds=5)
    fake.permanent[PHONE] = "opted_out"
    adapter = carrier(session, fake.base_url)
    assert (await adapter.send(message())).status == "sent"
    found = await adapter.lookup(message(), start)
    assert (found.status, found.state, found.code) == ("found", "undelivered", "MOBILE_IN_BLACK")
    [receipt] = parse_reports(fake.receipt_body("aliyun", fake.sent))
    assert (receipt.state, receipt.code) == ("undelivered", "MOBILE_IN_BLACK")


async def test_synchronous_opt_out_code_sets_the_flag(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    fake.error_codes[PHONE] = "MOBILE_IN_BLACK"
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.opted_out) == ("failed", True)


# --- lookup -------------------------------------------------------------------------------------


async def test_lookup_finds_an_accepted_message(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    fake.next_modes.append("drop")  # recorded, then the connection closes
    ambiguous = await carrier(session, fake.base_url).send(message())
    assert ambiguous.status == "ambiguous"
    adapter = carrier(session, fake.base_url)
    result = await adapter.lookup(message(), start)
    assert (result.status, result.state) == ("found", "sent")
    fake.deliver()
    result = await adapter.lookup(message(), start)
    assert (result.status, result.state) == ("found", "delivered")


async def test_lookup_absent_after_the_settle_delay(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    fake.next_modes.append("drop_before")
    await carrier(session, fake.base_url).send(message())
    await carrier(session, fake.base_url).send(message(id="out-0002"))  # another of ours
    recent = await carrier(session, fake.base_url).lookup(message(), start)
    assert (recent.status, recent.code) == ("unsupported", "TOO_RECENT")
    assert recent.detail and "settle" in recent.detail
    settled = await carrier(session, fake.base_url, absent_after_s=0).lookup(message(), start)
    assert settled.status == "absent"


async def test_lookup_pages_and_its_bound(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    sender = carrier(session, fake.base_url)
    await sender.send(message())
    for i in range(4):
        await sender.send(message(id=f"other-{i}"))
    paged = carrier(session, fake.base_url, page_size=2, absent_after_s=0)
    assert (await paged.lookup(message(), start)).status == "found"
    assert (await paged.lookup(message(id="never"), start)).status == "absent"
    bounded = carrier(session, fake.base_url, page_size=2, lookup_pages=2, absent_after_s=0)
    result = await bounded.lookup(message(id="never"), start)
    assert result.status == "unsupported"
    assert result.detail and "not complete" in result.detail


async def test_lookup_record_without_outid_is_unsupported(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    fake.sent.append(
        Sent(
            carrier="aliyun",
            message_id=None,
            phone=PHONE,
            text=None,
            template="SMS_123456789",
            params={},
            provider_id="1^0",
            at=datetime.now(UTC),
        )
    )
    result = await carrier(session, fake.base_url, absent_after_s=0).lookup(message(), start)
    assert result.status == "unsupported"
    assert result.detail and "OutId" in result.detail


async def test_lookup_failures_are_unsupported(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    fake.next_modes.append("500")
    assert (await carrier(session, fake.base_url).lookup(message(), start)).status == "unsupported"
    bad = carrier(session, fake.base_url, access_key_secret="wrong")
    result = await bad.lookup(message(), start)
    assert (result.status, result.code) == ("unsupported", "SignatureDoesNotMatch")
    refused = carrier(session, f"http://127.0.0.1:{closed_port()}")
    assert (await refused.lookup(message(), start)).status == "unsupported"
    old = datetime.now(UTC) - timedelta(days=31)
    assert (await carrier(session, fake.base_url).lookup(message(), old)).status == "unsupported"


# --- SmsReport ----------------------------------------------------------------------------------

DOC_SAMPLE = """[ { "phone_number" : "1381111****", "send_time" : "2017-01-01 00:00:00",
  "report_time" : "2017-01-01 00:00:00", "success" : true, "err_code" : "DELIVERED",
  "err_msg" : "用户接收成功", "sms_size" : "1", "biz_id" : "12345********", "out_id" : "67890**" } ]"""


def test_reports_documented_sample() -> None:
    [receipt] = parse_reports(DOC_SAMPLE.encode())
    assert receipt.carrier == "aliyun"
    assert (receipt.message_id, receipt.provider_id) == ("67890**", "12345********")
    assert (receipt.state, receipt.code, receipt.detail) == (
        "delivered",
        "DELIVERED",
        "用户接收成功",
    )
    assert receipt.at == datetime(2016, 12, 31, 16, 0, tzinfo=UTC)  # Beijing midnight
    assert receipt.phone is None  # the documented sample masks the number


def test_reports_failure_and_full_number() -> None:
    body = json.dumps(
        [
            {
                "phone_number": "13800138000",
                "success": False,
                "err_code": "MOBILE_NOT_ON_SERVICE",
                "err_msg": "停机",
                "biz_id": "9^0",
                "out_id": "out-1",
                "report_time": "2024-05-06 12:00:00",
            },
            {"success": "false", "err_code": "isv.MOBILE_NUMBER_ILLEGAL", "biz_id": 123},
        ]
    ).encode()
    first, second = parse_reports(body)
    assert (first.state, first.phone, first.message_id) == ("undelivered", PHONE, "out-1")
    assert (second.state, second.provider_id, second.message_id) == ("failed", "123", None)


async def test_pushed_receipts_parse(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    received: list[Receipt] = []

    async def report(request: web.Request) -> web.Response:
        received.extend(parse_reports(await request.read()))
        return web.json_response({"code": 0, "msg": "接收成功"})

    app = web.Application()
    app.router.add_post("/report", report)
    async with TestServer(app) as server:
        adapter = carrier(session, fake.base_url)
        await adapter.send(message())
        fake.deliver()
        url = str(server.make_url("/report"))
        assert await fake.push_receipts("aliyun", fake.sent, url=url, session=session) == [200]
    [receipt] = received
    assert (receipt.message_id, receipt.provider_id, receipt.state) == (
        "out-0001",
        fake.sent[0].provider_id,
        "delivered",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "object or array"),
        (b'[{"out_id": "1"}]', "success is missing"),
        (b'[{"success": 1, "out_id": "1"}]', "true or false"),
        (b'[{"success": true}]', "neither out_id nor biz_id"),
        (b'[{"success": true, "out_id": ""}]', "neither out_id nor biz_id"),
        (b'[{"success": true, "out_id": "1", "report_time": "yesterday"}]', "report_time"),
        (b'[{"success": true, "out_id": ["1"]}]', "out_id"),
    ],
)
def test_reports_reject_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookError, match=reason) as info:
        parse_reports(body)
    assert info.value.status == 400


@settings(max_examples=300)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_reports_fuzz_any_bytes(body: bytes) -> None:
    result = outcome_of(lambda: parse_reports(body))
    if isinstance(result, WebhookError):
        assert result.status == 400


@settings(max_examples=300)
@given(
    receipt_items(
        [
            "phone_number",
            "send_time",
            "report_time",
            "success",
            "err_code",
            "err_msg",
            "biz_id",
            "out_id",
        ]
    )
)
def test_reports_fuzz_shaped(body: bytes) -> None:
    result = outcome_of(lambda: parse_reports(body))
    if isinstance(result, WebhookError):
        assert result.status == 400
    else:
        assert all(r.message_id or r.provider_id for r in result)

"""Tencent Cloud adapter: the TC3 signature equals the official SDK's, every outcome path
against the fake carrier, reconciliation by the receipt pull, and the status-callback parser."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakecarrier import (
    OFFLINE,
    PHONE,
    SHORT_TIMEOUT_S,
    TENCENT_APP_ID,
    TENCENT_SECRET_ID,
    TENCENT_SECRET_KEY,
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
from tencentcloud.common import credential  # type: ignore[import-untyped]
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]
from tencentcloud.sms.v20210111 import models as sms_models  # type: ignore[import-untyped]
from tencentcloud.sms.v20210111.sms_client import SmsClient  # type: ignore[import-untyped]

from bot.outbound.carriers.base import Receipt
from bot.outbound.carriers.tencent import TencentCarrier, parse_reports
from bot.transport.inbound import WebhookError

SIGN = "测试签名"
FIXED_NOW = datetime(2024, 5, 6, 23, 59, 59, tzinfo=UTC)


def carrier(session: aiohttp.ClientSession, endpoint: str, **kw: Any) -> TencentCarrier:
    options: dict[str, Any] = {
        "secret_id": TENCENT_SECRET_ID,
        "secret_key": TENCENT_SECRET_KEY,
        "sdk_app_id": TENCENT_APP_ID,
        "sign_name": SIGN,
        "endpoint": endpoint,
        "timeout_s": 2.0,
    }
    options.update(kw)
    return TencentCarrier(session, **options)


def sdk_client(endpoint: str, scheme: str = "https") -> Any:
    profile = ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=endpoint))
    return SmsClient(
        credential.Credential(TENCENT_SECRET_ID, TENCENT_SECRET_KEY), "ap-guangzhou", profile
    )


# --- the signature equals the official SDK's -----------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://sms.tencentcloudapi.com", "sms.tencentcloudapi.com"),
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
    ],
)
def test_signature_equals_the_sdks(endpoint: str, host: str) -> None:
    adapter = carrier(OFFLINE, endpoint, now=lambda: FIXED_NOW)
    payload = adapter.send_payload(message())
    body, headers = adapter.signed("SendSms", payload)
    timestamp = int(FIXED_NOW.timestamp())
    assert headers["X-TC-Timestamp"] == str(timestamp)
    assert headers["Host"] == host
    assert (headers["X-TC-Action"], headers["X-TC-Version"], headers["X-TC-Region"]) == (
        "SendSms",
        "2021-01-11",
        "ap-guangzhou",
    )

    # The SDK's own signer over the same request: same body, timestamp, host, content type.
    client = sdk_client(host)
    request = SimpleNamespace(
        method="POST",
        uri="/",
        data=body,
        header={
            "Content-Type": headers["Content-Type"],
            "Host": host,
            "X-TC-Timestamp": str(timestamp),
        },
    )
    day = "2024-05-06"
    signature = client._get_tc3_signature(payload, request, day, "sms", TENCENT_SECRET_KEY)
    expected = (
        f"TC3-HMAC-SHA256 Credential={TENCENT_SECRET_ID}/{day}/sms/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )
    assert headers["Authorization"] == expected


def test_payload_equals_the_sdks_request_model() -> None:
    msg = message()
    ours = carrier(OFFLINE, "https://sms.tencentcloudapi.com").send_payload(msg)
    request = sms_models.SendSmsRequest()
    request.PhoneNumberSet = [msg.phone]
    request.SmsSdkAppId = TENCENT_APP_ID
    request.SignName = SIGN
    request.TemplateId = msg.codes["tencent"]
    request.TemplateParamSet = ["张三", "1,200.00", "3"]
    request.SessionContext = msg.id
    sdk = {k: v for k, v in request._serialize().items() if v is not None}
    assert ours == sdk


async def test_sdk_and_adapter_requests_agree_at_the_fake(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    msg = message()
    client = sdk_client(fake.base_url.removeprefix("http://"), scheme="http")
    request = sms_models.SendSmsRequest()
    request.from_json_string(
        json.dumps(carrier(session, fake.base_url).send_payload(msg), ensure_ascii=False)
    )
    response = await asyncio.to_thread(client.SendSms, request)
    assert response.SendStatusSet[0].Code == "Ok"
    sdk_seen = fake.seen[-1]
    assert sdk_seen.accepted  # the fake's TC3 verifier accepts the official SDK's signature

    outcome = await carrier(session, fake.base_url).send(msg)
    assert outcome.status == "sent"
    ours = fake.seen[-1]
    assert ours.accepted
    assert json.loads(ours.body) == json.loads(sdk_seen.body)
    for name in ("X-TC-Action", "X-TC-Version", "X-TC-Region", "Content-Type", "Host"):
        assert ours.headers[name] == sdk_seen.headers[name]
    assert [r.message_id for r in fake.sent] == [msg.id, msg.id]


# --- classification against the fake carrier ---------------------------------------------------


async def test_success(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    outcome = await carrier(session, fake.base_url).send(message())
    assert outcome.status == "sent"
    [record] = fake.sent
    assert outcome.provider_id == record.provider_id
    assert (record.message_id, record.phone, record.template) == ("out-0001", PHONE, "1234567")
    assert record.params == ["张三", "1,200.00", "3"]  # positional, in the template's order


async def test_no_template_id(session: aiohttp.ClientSession) -> None:
    adapter = carrier(session, f"http://127.0.0.1:{closed_port()}")
    outcome = await adapter.send(message(codes={"aliyun": "SMS_1"}))
    assert (outcome.status, outcome.code) == ("failed", "NO_TEMPLATE_ID")
    assert adapter.check(message()) is None


async def test_throttled_is_retry(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    fake.next_modes.append("429")
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code) == ("retry", "RequestLimitExceeded")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("LimitExceeded.PhoneNumberDailyLimit", "retry"),
        ("LimitExceeded.SomethingNew", "retry"),
        ("LimitExceeded.PhoneNumberCountLimit", "failed"),
        ("InternalError.Timeout", "ambiguous"),
        ("InternalError.Unheard", "ambiguous"),
        ("FailedOperation.TemplateIncorrectOrUnapproved", "failed"),
        ("FailedOperation.ContainSensitiveWord", "failed"),
    ],
)
async def test_code_table(
    fake: FakeCarrier, session: aiohttp.ClientSession, code: str, status: str
) -> None:
    fake.error_codes[PHONE] = code
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code) == (status, code)


async def test_server_error_is_ambiguous(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    fake.next_modes.append("500")
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code) == ("ambiguous", "502")


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
        ({"secret_key": "wrong"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKID-unknown"}, "AuthFailure.SecretIdNotFound"),
        ({"sdk_app_id": "1400999999"}, "UnauthorizedOperation.SmsSdkAppIdVerifyFail"),
    ],
)
async def test_bad_credentials_fail_as_configuration(
    fake: FakeCarrier, session: aiohttp.ClientSession, override: dict[str, str], code: str
) -> None:
    outcome = await carrier(session, fake.base_url, **override).send(message())
    assert (outcome.status, outcome.code) == ("failed", code)
    assert outcome.detail and outcome.detail.startswith("configuration")
    assert fake.sent == []


async def test_expired_signature_is_configuration(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    skewed = carrier(session, fake.base_url, now=lambda: datetime.now(UTC) - timedelta(hours=1))
    outcome = await skewed.send(message())
    assert (outcome.status, outcome.code) == ("failed", "AuthFailure.SignatureExpire")


@pytest.mark.parametrize(
    ("permanent", "code", "opted_out", "invalid"),
    [
        ("opted_out", "FailedOperation.PhoneNumberInBlacklist", True, False),
        ("invalid_number", "InvalidParameterValue.IncorrectPhoneNumber", False, True),
    ],
)
async def test_permanent_number_errors(
    fake: FakeCarrier,
    session: aiohttp.ClientSession,
    permanent: Any,
    code: str,
    opted_out: bool,
    invalid: bool,
) -> None:
    fake.permanent[PHONE] = permanent
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code) == ("failed", code)
    assert (outcome.opted_out, outcome.invalid_number) == (opted_out, invalid)


# --- lookup -------------------------------------------------------------------------------------


async def test_lookup_finds_a_message_with_a_receipt(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    fake.next_modes.append("timeout")
    short = carrier(session, fake.base_url, timeout_s=SHORT_TIMEOUT_S)
    assert (await short.send(message())).status == "ambiguous"
    adapter = carrier(session, fake.base_url)
    before = await adapter.lookup(message(), start)
    assert before.status == "unsupported"  # accepted, but no receipt yet: the pull cannot see it
    fake.deliver()
    found = await adapter.lookup(message(), start)
    assert (found.status, found.state, found.provider_id) == (
        "found",
        "delivered",
        fake.sent[0].provider_id,
    )


async def test_lookup_never_answers_absent(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    adapter = carrier(session, fake.base_url)
    await adapter.send(message(id="out-0002"))
    fake.deliver()
    result = await adapter.lookup(message(), start)
    assert result.status == "unsupported"
    assert result.detail and "cannot prove absence" in result.detail


async def test_lookup_without_session_context_echo(
    session: aiohttp.ClientSession,
) -> None:
    fake = FakeCarrier(tencent_echo_session_context=False)
    await fake.start()
    try:
        start = datetime.now(UTC) - timedelta(seconds=5)
        adapter = carrier(session, fake.base_url)
        await adapter.send(message())
        fake.deliver(ok=False)
        result = await adapter.lookup(message(), start)
    finally:
        await fake.stop()
    assert result.status == "unsupported"
    assert result.detail and "SessionContext" in result.detail


async def test_lookup_pages(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    adapter = carrier(session, fake.base_url)
    for i in range(120):
        fake.sent.append(fake_record(f"other-{i}", datetime.now(UTC)))
    await adapter.send(message())
    fake.deliver()
    assert (await adapter.lookup(message(), start)).status == "found"
    one_page = carrier(session, fake.base_url, lookup_pages=1)
    assert (await one_page.lookup(message(), start)).status == "unsupported"


def fake_record(message_id: str, at: datetime) -> Sent:
    return Sent(
        carrier="tencent",
        message_id=message_id,
        phone=PHONE,
        text=None,
        template="1234567",
        params=[],
        provider_id=f"2640:{message_id}",
        at=at,
        status="delivered",
    )


async def test_lookup_failures_are_unsupported(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    fake.next_modes.append("500")
    result = await carrier(session, fake.base_url).lookup(message(), start)
    assert (result.status, result.code) == ("unsupported", "InternalError.OtherError")
    bad = carrier(session, fake.base_url, secret_key="wrong")
    assert (await bad.lookup(message(), start)).status == "unsupported"
    refused = carrier(session, f"http://127.0.0.1:{closed_port()}")
    assert (await refused.lookup(message(), start)).status == "unsupported"


# --- status callback ------------------------------------------------------------------------------

DOC_SAMPLE = """[ { "user_receive_time": "2015-10-17 08:03:04", "nationcode": "86",
  "mobile": "13xxxxxxxxx", "report_status": "SUCCESS", "errmsg": "DELIVRD",
  "description": "用户短信送达成功", "sid": "xxxxxxx" } ]"""


def test_reports_documented_sample() -> None:
    [receipt] = parse_reports(DOC_SAMPLE.encode())
    assert (receipt.carrier, receipt.provider_id, receipt.message_id) == (
        "tencent",
        "xxxxxxx",
        None,
    )
    assert (receipt.state, receipt.code, receipt.detail) == (
        "delivered",
        "DELIVRD",
        "用户短信送达成功",
    )
    assert receipt.at == datetime(2015, 10, 17, 0, 3, 4, tzinfo=UTC)
    assert receipt.phone is None  # the documented sample masks the number


async def test_reports_from_the_fake(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    adapter = carrier(session, fake.base_url)
    await adapter.send(message())
    await adapter.send(message(id="out-0002"))
    fake.deliver(fake.sent[:1])
    fake.deliver(fake.sent[1:], ok=False)
    first, second = parse_reports(fake.receipt_body("tencent", fake.sent))
    assert (first.message_id, first.state, first.phone) == ("out-0001", "delivered", PHONE)
    assert (second.message_id, second.state) == ("out-0002", "undelivered")
    assert first.provider_id == fake.sent[0].provider_id


async def test_pushed_receipts_parse(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    received: list[Receipt] = []

    async def report(request: web.Request) -> web.Response:
        received.extend(parse_reports(await request.read()))
        return web.json_response({"result": 0, "errmsg": "OK"})

    app = web.Application()
    app.router.add_post("/report", report)
    async with TestServer(app) as server:
        adapter = carrier(session, fake.base_url)
        await adapter.send(message())
        fake.deliver()
        url = str(server.make_url("/report"))
        assert await fake.push_receipts("tencent", fake.sent, url=url, session=session) == [200]
    [receipt] = received
    assert (receipt.message_id, receipt.provider_id, receipt.state) == (
        "out-0001",
        fake.sent[0].provider_id,
        "delivered",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"[null]", "must be a JSON object"),
        (b'[{"report_status": "SUCCESS"}]', "sid is missing"),
        (b'[{"sid": "1"}]', "report_status is missing"),
        (b'[{"sid": "1", "report_status": "MAYBE"}]', "not SUCCESS/FAIL"),
        (b'[{"sid": {"a": 1}, "report_status": "FAIL"}]', "sid must be"),
        (
            b'[{"sid": "1", "report_status": "FAIL", "user_receive_time": "17/10/2015"}]',
            "user_receive_time",
        ),
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
            "user_receive_time",
            "nationcode",
            "mobile",
            "report_status",
            "errmsg",
            "description",
            "sid",
            "ext",
        ]
    )
)
def test_reports_fuzz_shaped(body: bytes) -> None:
    result = outcome_of(lambda: parse_reports(body))
    if isinstance(result, WebhookError):
        assert result.status == 400
    else:
        assert all(r.provider_id for r in result)

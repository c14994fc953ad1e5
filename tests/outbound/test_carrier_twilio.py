"""Twilio adapter: the request equals the official SDK's, every outcome path against the fake
carrier, reconciliation, and the status-callback parser."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakecarrier import (
    OFFLINE,
    PHONE,
    SHORT_TIMEOUT_S,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeCarrier,
    closed_port,
    message,
    outcome_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.http import HttpClient  # type: ignore[import-untyped]
from twilio.http.response import Response  # type: ignore[import-untyped]
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from bot.outbound.carriers._http import retry_after_s
from bot.outbound.carriers.base import Receipt
from bot.outbound.carriers.twilio import (
    TwilioCarrier,
    callback_ref,
    callback_url,
    parse_status_callback,
)
from bot.transport.inbound import WebhookError
from bot.transport.twilio import expected_signature, verify

FROM = "+15005550006"
CALLBACK = "https://bot.example.com/webhooks/twilio/status?tenant=t1#rc=2&rp=ct"


def carrier(session: aiohttp.ClientSession, base_url: str, **kw: Any) -> TwilioCarrier:
    options: dict[str, Any] = {
        "account_sid": TWILIO_SID,
        "auth_token": TWILIO_TOKEN,
        "from_number": FROM,
        "base_url": base_url,
        "status_callback": CALLBACK,
        "timeout_s": 2.0,
    }
    options.update(kw)
    return TwilioCarrier(session, **options)


# --- the request equals the official SDK's -------------------------------------------------------


class CaptureHttpClient(HttpClient):  # type: ignore[misc]  # untyped SDK base
    """twilio's HTTP client seam: records the request, answers ``reply``."""

    def __init__(self, reply: str, status: int = 201) -> None:
        super().__init__(logging.getLogger("twilio-capture"), is_async=False)
        self.reply = reply
        self.status = status
        self.calls: list[dict[str, Any]] = []

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.calls.append(
            {"method": method, "url": url, "params": params, "data": data, "auth": auth}
        )
        return Response(self.status, self.reply)


def _basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


async def test_create_request_equals_the_sdks(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    msg = message()
    outcome = await carrier(session, fake.base_url).send(msg)
    assert outcome.status == "sent"
    ours = fake.seen[-1]

    capture = CaptureHttpClient('{"sid": "SM' + "0" * 32 + '", "status": "queued"}')
    client = Client(TWILIO_SID, TWILIO_TOKEN, http_client=capture)
    client.messages.create(
        to=msg.phone, from_=FROM, body=msg.text, status_callback=callback_url(CALLBACK, msg.id)
    )
    sdk = capture.calls[0]

    assert ours.method == sdk["method"] == "POST"
    assert sdk["url"] == "https://api.twilio.com" + ours.path
    assert dict(ours.form) == {k: str(v) for k, v in sdk["data"].items()}
    assert _basic(ours.headers["Authorization"]) == sdk["auth"] == (TWILIO_SID, TWILIO_TOKEN)


async def test_create_with_a_messaging_service_and_validity_equals_the_sdks(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    msg = message()
    adapter = carrier(
        session,
        fake.base_url,
        from_number=None,
        messaging_service_sid="MG" + "1" * 32,
        validity_period_s=600,
    )
    assert (await adapter.send(msg)).status == "sent"
    capture = CaptureHttpClient('{"sid": "SM' + "0" * 32 + '", "status": "accepted"}')
    Client(TWILIO_SID, TWILIO_TOKEN, http_client=capture).messages.create(
        to=msg.phone,
        messaging_service_sid="MG" + "1" * 32,
        body=msg.text,
        status_callback=callback_url(CALLBACK, msg.id),
        validity_period=600,
    )
    sdk_form = {k: str(v) for k, v in capture.calls[0]["data"].items()}
    assert dict(fake.seen[-1].form) == sdk_form


async def test_list_request_equals_the_sdks(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    sent_after = datetime(2024, 5, 6, 23, 30, tzinfo=UTC)
    await carrier(session, fake.base_url).lookup(message(), sent_after)
    ours = fake.seen[-1]

    capture = CaptureHttpClient('{"messages": [], "next_page_uri": null}', status=200)
    Client(TWILIO_SID, TWILIO_TOKEN, http_client=capture).messages.list(
        to=PHONE, from_=FROM, date_sent_after="2024-05-06", page_size=100
    )
    sdk = capture.calls[0]
    assert ours.method == sdk["method"] == "GET"
    assert sdk["url"] == "https://api.twilio.com" + ours.path
    assert dict(ours.query) == {k: str(v) for k, v in sdk["params"].items()}
    assert _basic(ours.headers["Authorization"]) == sdk["auth"]


def test_callback_ref_is_covered_by_twilios_signature() -> None:
    # Twilio signs the full callback URL, so the ref we add is authenticated with it; our
    # verifier and the SDK's RequestValidator agree on such a URL.
    url = callback_url(CALLBACK, "out-0001")
    assert url == (
        "https://bot.example.com/webhooks/twilio/status?tenant=t1&ref=out-0001#rc=2&rp=ct"
    )
    params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "To": PHONE}
    validator = RequestValidator(TWILIO_TOKEN)
    signature = validator.compute_signature(url, params)
    assert signature == expected_signature(TWILIO_TOKEN, url, list(params.items()))
    assert validator.validate(url, params, signature)
    assert callback_ref(url) == "out-0001"
    receipt = parse_status_callback(list(params.items()), callback_ref(url))
    assert (receipt.message_id, receipt.state) == ("out-0001", "delivered")


# --- classification against the fake carrier ---------------------------------------------------


async def test_success(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    outcome = await carrier(session, fake.base_url).send(message())
    assert outcome.status == "sent"
    assert outcome.provider_id and outcome.provider_id.startswith("SM")
    [record] = fake.sent
    assert (record.message_id, record.phone, record.provider_id) == (
        "out-0001",
        PHONE,
        outcome.provider_id,
    )
    assert record.text == message().text


async def test_throttled_is_retry_with_retry_after(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    fake.next_modes.append("429")
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code, outcome.retry_after_s) == ("retry", "20429", 1.0)
    assert fake.sent == []


async def test_server_error_is_ambiguous(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    fake.next_modes.append("500")
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code) == ("ambiguous", "20500")


@pytest.mark.parametrize(
    ("mode", "recorded"),
    [("timeout", True), ("timeout_before", False), ("drop", True), ("drop_before", False)],
)
async def test_no_answer_after_the_request_is_ambiguous(
    fake: FakeCarrier, session: aiohttp.ClientSession, mode: Any, recorded: bool
) -> None:
    # Whether the provider recorded it or not, the client cannot tell: ambiguous both ways.
    fake.next_modes.append(mode)
    outcome = await carrier(session, fake.base_url, timeout_s=SHORT_TIMEOUT_S).send(message())
    assert outcome.status == "ambiguous"
    assert outcome.code == ("READ_TIMEOUT" if mode.startswith("timeout") else "DISCONNECTED")
    assert bool(fake.sent) is recorded


async def test_connection_refused_is_retry(session: aiohttp.ClientSession) -> None:
    adapter = carrier(session, f"http://127.0.0.1:{closed_port()}")
    outcome = await adapter.send(message())
    assert (outcome.status, outcome.code) == ("retry", "CONNECT_ERROR")


async def test_bad_credentials_fail_as_configuration(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    outcome = await carrier(session, fake.base_url, auth_token="wrong").send(message())
    assert (outcome.status, outcome.code) == ("failed", "20003")
    assert outcome.detail and "configuration" in outcome.detail
    assert fake.sent == []


async def test_unknown_account_fails_as_configuration(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    fake.twilio_account_sid = "AC" + "9" * 32  # our credentials no longer name this account
    outcome = await carrier(session, fake.base_url).send(message())
    assert outcome.status == "failed"
    assert outcome.detail and "configuration" in outcome.detail


@pytest.mark.parametrize(
    ("permanent", "code", "opted_out", "invalid"),
    [("opted_out", "21610", True, False), ("invalid_number", "21211", False, True)],
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
    # Twilio echoes the number in its message; the detail (audit, logs) keeps it masked.
    assert outcome.detail and "13800138000" not in outcome.detail


@pytest.mark.parametrize(
    ("code", "status"), [("21611", "retry"), ("21617", "failed"), ("21408", "failed")]
)
async def test_code_table(
    fake: FakeCarrier, session: aiohttp.ClientSession, code: str, status: str
) -> None:
    fake.error_codes[PHONE] = code
    outcome = await carrier(session, fake.base_url).send(message())
    assert (outcome.status, outcome.code) == (status, code)


async def test_unparsable_success_is_ambiguous(session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=201, text="<html>ok</html>")

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        outcome = await carrier(session, f"http://{host}:{port}").send(message())
    finally:
        await runner.cleanup()
    assert outcome.status == "ambiguous"


class RaisingSession:
    """Stands in for the ClientSession: every request fails with ``exc`` (failures a local
    server cannot produce on demand, such as a connect timeout)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def request(self, *args: object, **kwargs: object) -> Any:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), "retry", "CONNECT_TIMEOUT"),
        (aiohttp.SocketTimeoutError("read"), "ambiguous", "READ_TIMEOUT"),
        (TimeoutError(), "ambiguous", "READ_TIMEOUT"),
        (aiohttp.ServerDisconnectedError(), "ambiguous", "DISCONNECTED"),
        (aiohttp.ClientPayloadError("cut short"), "ambiguous", "NETWORK"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "ambiguous", "NETWORK"),
        (aiohttp.InvalidURL("http://[bad"), "failed", "CONFIG"),
    ],
)
async def test_network_failures(exc: BaseException, status: str, code: str) -> None:
    adapter = carrier(cast(aiohttp.ClientSession, RaisingSession(exc)), "https://api.twilio.com")
    outcome = await adapter.send(message())
    assert (outcome.status, outcome.code) == (status, code)
    lookup = await adapter.lookup(message(), datetime.now(UTC))
    assert (lookup.status, lookup.code) == ("unsupported", code)


async def test_cancellation_propagates() -> None:
    # A cancelled send is the caller's to handle (it may have been delivered): never swallowed.
    adapter = carrier(
        cast(aiohttp.ClientSession, RaisingSession(asyncio.CancelledError())),
        "https://api.twilio.com",
    )
    with pytest.raises(asyncio.CancelledError):
        await adapter.send(message())


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Mon, 06 May 2024 07:08:39 GMT", 30.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("1e9", 86_400.0),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert retry_after_s(header, lambda: now) == seconds


async def test_text_it_cannot_send(session: aiohttp.ClientSession) -> None:
    adapter = carrier(session, f"http://127.0.0.1:{closed_port()}")
    assert adapter.check(message()) is None
    for text in ("  ", "长" * 1601):
        assert adapter.check(message(text=text))
        outcome = await adapter.send(message(text=text))
        assert (outcome.status, outcome.code) == ("failed", "BAD_TEXT")


async def test_fake_misbehaves_by_a_seeded_rng(session: aiohttp.ClientSession) -> None:
    async def statuses(seed: int) -> list[str]:
        fake = FakeCarrier(seed=seed, fail_rate=0.5, modes=["429", "500"], latency_s=0.001)
        await fake.start()
        try:
            adapter = carrier(session, fake.base_url)
            outcomes = [await adapter.send(message(id=f"m{i}")) for i in range(12)]
        finally:
            await fake.stop()
        assert len(fake.sent) == sum(o.status == "sent" for o in outcomes)
        return [o.status for o in outcomes]

    first = await statuses(7)
    assert first == await statuses(7)  # the same seed misbehaves the same way
    assert {"sent", "retry", "ambiguous"} <= set(first)


def test_needs_a_sender() -> None:
    with pytest.raises(ValueError, match="from_number or messaging_service_sid"):
        TwilioCarrier(OFFLINE, account_sid="AC1", auth_token="t")


def test_repr_hides_the_token() -> None:
    adapter = TwilioCarrier(OFFLINE, account_sid="AC1", auth_token="s3cret", from_number=FROM)
    assert "s3cret" not in repr(adapter)


# --- lookup -------------------------------------------------------------------------------------


def _later(hours: float) -> Any:
    return lambda: datetime.now(UTC) + timedelta(hours=hours)


async def test_lookup_finds_a_sent_message(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    adapter = carrier(session, fake.base_url)
    fake.next_modes.append("timeout")  # accepted, then no answer
    sent = await carrier(session, fake.base_url, timeout_s=SHORT_TIMEOUT_S).send(message())
    assert sent.status == "ambiguous"
    result = await adapter.lookup(message(), start)
    assert result.status == "found"
    assert result.provider_id == fake.sent[0].provider_id
    assert result.state == "sent"


async def test_lookup_reports_delivery(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    adapter = carrier(session, fake.base_url)
    await adapter.send(message())
    fake.deliver()
    result = await adapter.lookup(message(), start)
    assert (result.status, result.state) == ("found", "delivered")


async def test_lookup_is_absent_only_when_settled(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    fake.next_modes.append("timeout_before")  # never recorded
    adapter = carrier(session, fake.base_url, timeout_s=SHORT_TIMEOUT_S)
    assert (await adapter.send(message())).status == "ambiguous"
    # Another message to the same number does not match ours.
    await carrier(session, fake.base_url).send(message(id="out-0002", text="另一条"))
    recent = await adapter.lookup(message(), start)
    assert (recent.status, recent.code) == ("unsupported", "TOO_RECENT")  # maybe still queued
    assert recent.detail and "queued" in recent.detail
    settled = await carrier(session, fake.base_url, now=_later(11)).lookup(message(), start)
    assert settled.status == "absent"
    quick = carrier(session, fake.base_url, now=_later(0.5), validity_period_s=600)
    assert (await quick.lookup(message(), start)).status == "absent"


async def test_lookup_cannot_tell_identical_messages_apart(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    adapter = carrier(session, fake.base_url)
    await adapter.send(message())
    await adapter.send(message(id="out-0002"))
    result = await adapter.lookup(message(), start)
    assert result.status == "unsupported"
    assert result.detail and "2 messages" in result.detail


async def test_lookup_ignores_messages_before_the_window(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    adapter = carrier(session, fake.base_url, now=_later(11))
    await carrier(session, fake.base_url).send(message())
    after = datetime.now(UTC) + timedelta(seconds=2)
    assert (await adapter.lookup(message(), after)).status == "absent"


async def test_lookup_pages_and_its_bound(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    sender = carrier(session, fake.base_url)
    for i in range(5):
        await sender.send(message(id=f"other-{i}", text=f"其他 {i}"))
    await sender.send(message())
    for i in range(5, 7):
        await sender.send(message(id=f"other-{i}", text=f"其他 {i}"))
    paged = carrier(session, fake.base_url, page_size=2, lookup_pages=10, now=_later(11))
    assert (await paged.lookup(message(), start)).status == "found"
    missing = message(id="x", text="从未发送")
    assert (await paged.lookup(missing, start)).status == "absent"
    bounded = carrier(session, fake.base_url, page_size=2, lookup_pages=2, now=_later(11))
    result = await bounded.lookup(missing, start)
    assert result.status == "unsupported"
    assert result.detail and "not complete" in result.detail


async def test_lookup_failures_are_unsupported(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    start = datetime.now(UTC)
    fake.next_modes.append("500")
    assert (await carrier(session, fake.base_url).lookup(message(), start)).status == (
        "unsupported"
    )
    bad = carrier(session, fake.base_url, auth_token="wrong")
    assert (await bad.lookup(message(), start)).status == "unsupported"
    refused = carrier(session, f"http://127.0.0.1:{closed_port()}")
    assert (await refused.lookup(message(), start)).status == "unsupported"


# --- status callback ------------------------------------------------------------------------------

SID = "SM" + "f" * 32


def _form(**fields: str) -> list[tuple[str, str]]:
    base = {"MessageSid": SID, "MessageStatus": "delivered", "To": PHONE, "AccountSid": TWILIO_SID}
    base.update(fields)
    return [(k, v) for k, v in base.items() if v is not None]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", "sent"),
        ("accepted", "sent"),
        ("sending", "sent"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "delivered"),
        ("undelivered", "undelivered"),
        ("failed", "failed"),
        ("canceled", "failed"),
    ],
)
def test_callback_states(status: str, state: str) -> None:
    receipt = parse_status_callback(_form(MessageStatus=status), "out-0001")
    assert (receipt.carrier, receipt.state, receipt.provider_id) == ("twilio", state, SID)
    assert (receipt.message_id, receipt.phone, receipt.at) == ("out-0001", PHONE, None)


def test_callback_documented_sample() -> None:
    # Field set of "Outbound Message Status in Status Callbacks" (a failed message).
    body = (
        "AccountSid=AC" + "1" * 32 + "&ApiVersion=2010-04-01&ErrorCode=30003"
        "&From=%2B15017122661&MessageSid=" + SID + "&MessageStatus=undelivered"
        "&SmsSid=" + SID + "&SmsStatus=undelivered&To=%2B8613800138000"
    )
    receipt = parse_status_callback(parse_qsl(body, keep_blank_values=True), None)
    assert (receipt.state, receipt.code, receipt.message_id) == ("undelivered", "30003", None)


async def test_callback_from_the_fake(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    await carrier(session, fake.base_url).send(message())
    fake.deliver()
    record = fake.sent[0]
    form = fake.twilio_callback_form(record)
    assert record.callback is not None
    receipt = parse_status_callback(list(form.items()), callback_ref(record.callback))
    assert (receipt.message_id, receipt.provider_id, receipt.state) == (
        "out-0001",
        record.provider_id,
        "delivered",
    )


async def test_pushed_callback_verifies_and_parses(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    # The fake posts a signed callback; the receiving side checks it as the web layer does.
    received: list[Receipt] = []

    async def status(request: web.Request) -> web.Response:
        pairs = [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
        url = str(request.url)
        verify(TWILIO_TOKEN, url, pairs, request.headers.get("X-Twilio-Signature"))
        received.append(parse_status_callback(pairs, request.query.get("ref")))
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/status", status)
    async with TestServer(app) as server:
        callback = str(server.make_url("/status"))
        adapter = carrier(session, fake.base_url, status_callback=callback)
        await adapter.send(message())
        fake.deliver()
        assert await fake.push_receipts("twilio", fake.sent, session=session) == [200]
    [receipt] = received
    assert (receipt.message_id, receipt.state) == ("out-0001", "delivered")


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ([("MessageStatus", "delivered")], "MessageSid is missing"),
        (_form(MessageSid="SM/../../x"), "not a Twilio message SID"),
        (_form(MessageStatus=""), "MessageStatus is missing"),
        (_form(MessageStatus="exploded"), "not a known status"),
        (_form(MessageStatus="received"), "inbound"),
        (_form(ErrorCode="abc"), "not a Twilio error code"),
        ([*_form(), ("MessageSid", "SM" + "0" * 32)], "given twice"),
    ],
)
def test_callback_rejects_malformed(form: list[tuple[str, str]], reason: str) -> None:
    with pytest.raises(WebhookError, match=reason) as info:
        parse_status_callback(form, None)
    assert info.value.status == 400


def test_callback_rejects_an_overlong_ref() -> None:
    with pytest.raises(WebhookError) as info:
        parse_status_callback(_form(), "r" * 300)
    assert info.value.status == 400


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["MessageSid", "MessageStatus", "ErrorCode", "To", "X"]) | st.text(),
            st.text() | st.sampled_from(["delivered", "failed", SID, "30003", PHONE]),
        ),
        max_size=6,
    ),
    st.none() | st.text(),
)
def test_callback_fuzz(form: list[tuple[str, str]], ref: str | None) -> None:
    result = outcome_of(lambda: parse_status_callback(form, ref))
    if isinstance(result, WebhookError):
        assert result.status == 400
    else:
        assert result.provider_id

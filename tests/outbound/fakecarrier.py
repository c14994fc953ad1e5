"""A local fake of the three SMS providers' APIs, on one loopback port, for tests.

It speaks what the adapters use, in the providers' own shapes:

* Twilio — ``POST/GET /2010-04-01/Accounts/{sid}/Messages.json`` (create, list with ``To``,
  ``From``, ``DateSent>``, ``PageSize``, ``Page`` and ``next_page_uri``); HTTP Basic auth.
* Alibaba Cloud — ``POST /`` with ``x-acs-action: SendSms | QuerySendDetails`` and the
  parameters in the query; ACS3-HMAC-SHA256 signature, date window and nonce reuse checked.
* Tencent Cloud — ``POST /`` with ``X-TC-Action: SendSms | PullSmsSendStatusByPhoneNumber``;
  TC3-HMAC-SHA256 signature and timestamp window checked.

The signature checks are written from the providers' documents, independently of the
adapters' signers (tests prove the official SDKs' requests pass them). Bad credentials get the
provider's error shape. Every accepted message is recorded in :attr:`FakeCarrier.sent`, and
the query APIs answer from there, so reconciliation can be tested end to end.

Misbehaviour, for send requests (``SendSms``, Twilio create): ``latency_s`` (the message is
recorded after it, or before it with ``record_first``: a provider that keeps a message its
client gave up on); ``fail_rate``
with a seeded RNG choosing among ``modes``; or deterministically ``next_modes``, consumed one
per request of any kind (a query request given any mode answers a server error). Modes:

* ``"500"`` — a server error (HTTP 5xx), nothing recorded;
* ``"429"`` — throttled, nothing recorded (Twilio and Aliyun: HTTP 429 with Retry-After: 1;
  Tencent: ``RequestLimitExceeded`` in an HTTP 200, as it answers);
* ``"timeout"`` — recorded, then no answer (the ambiguous case: the provider has it);
* ``"timeout_before"`` — no answer, nothing recorded;
* ``"drop"`` — recorded, then the connection is closed without an answer;
* ``"drop_before"`` — the connection is closed, nothing recorded.

Per-phone permanent outcomes (:attr:`FakeCarrier.permanent`): ``"opted_out"`` and
``"invalid_number"``, answered as each provider does (Aliyun accepts a send to an
unsubscribed number and reports ``MOBILE_IN_BLACK`` later, in QuerySendDetails and receipts);
:attr:`FakeCarrier.error_codes` answers any given provider code instead.

The end of the module holds the plain helpers of the carrier tests (a sample message, a closed
port, hypothesis strategies): this directory has no ``__init__.py``, so tests import them by
module name (``from fakecarrier import …``), as ``tests/dialogs`` does with its support module.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import aiohttp
from aiohttp import web
from hypothesis import strategies as st

from bot.outbound.carriers.base import CarrierMessage
from bot.transport.inbound import WebhookError
from bot.transport.twilio import expected_signature

Mode = Literal["500", "429", "timeout", "timeout_before", "drop", "drop_before"]
MODES: tuple[Mode, ...] = ("500", "429", "timeout", "timeout_before", "drop", "drop_before")
Permanent = Literal["opted_out", "invalid_number"]
CarrierKind = Literal["twilio", "aliyun", "tencent"]
T = TypeVar("T")

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

# Obvious test dummies, never real credentials.
TWILIO_SID = "AC" + "0" * 31 + "1"
TWILIO_TOKEN = "test-twilio-auth-token"
ALIYUN_KEY_ID = "LTAI-test-key-id"
ALIYUN_SECRET = "test-aliyun-key-secret"
TENCENT_SECRET_ID = "AKID-test-secret-id"
TENCENT_SECRET_KEY = "test-tencent-secret-key"
TENCENT_APP_ID = "1400000001"


@dataclass
class Sent:
    """One message the fake accepted."""

    carrier: CarrierKind
    message_id: str | None  # ours: Aliyun OutId, Tencent SessionContext, Twilio callback ref
    phone: str  # E.164
    text: str | None  # Twilio's Body
    template: str | None  # Aliyun TemplateCode / Tencent TemplateId
    params: dict[str, str] | list[str] | None  # Aliyun TemplateParam / Tencent TemplateParamSet
    provider_id: str
    at: datetime
    status: Literal["sent", "delivered", "failed"] = "sent"
    error_code: str | None = None
    callback: str | None = None  # Twilio's StatusCallback URL
    sign: str | None = None


@dataclass
class Seen:
    """One request as received (for comparing our requests with the SDKs')."""

    carrier: CarrierKind
    action: str
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    accepted: bool = False
    form: list[tuple[str, str]] = field(default_factory=list)


class _Reject(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


class FakeCarrier:
    def __init__(
        self,
        *,
        seed: int = 0,
        latency_s: float = 0.0,
        record_first: bool = False,
        fail_rate: float = 0.0,
        modes: Sequence[Mode] = MODES,
        hang_s: float = 30.0,
        check_time: bool = True,
        tencent_echo_session_context: bool = True,
        now: Callable[[], datetime] | None = None,
        twilio_account_sid: str = TWILIO_SID,
        twilio_auth_token: str = TWILIO_TOKEN,
        aliyun_access_key_id: str = ALIYUN_KEY_ID,
        aliyun_access_key_secret: str = ALIYUN_SECRET,
        tencent_secret_id: str = TENCENT_SECRET_ID,
        tencent_secret_key: str = TENCENT_SECRET_KEY,
        tencent_sdk_app_id: str = TENCENT_APP_ID,
    ) -> None:
        self.latency_s = latency_s
        self.record_first = record_first
        self.fail_rate = fail_rate
        self.modes = list(modes)
        self.hang_s = hang_s
        self.check_time = check_time
        self.tencent_echo_session_context = tencent_echo_session_context
        self.rng = random.Random(seed)
        self.now = now or (lambda: datetime.now(UTC))
        self.twilio_account_sid = twilio_account_sid
        self.twilio_auth_token = twilio_auth_token
        self.aliyun_keys = {aliyun_access_key_id: aliyun_access_key_secret}
        self.tencent_keys = {tencent_secret_id: tencent_secret_key}
        self.tencent_sdk_app_id = tencent_sdk_app_id
        self.sent: list[Sent] = []
        self.seen: list[Seen] = []
        self.permanent: dict[str, Permanent] = {}
        self.error_codes: dict[str, str] = {}
        self.next_modes: list[Mode] = []
        self._nonces: set[str] = set()
        self._ids = itertools.count(1)
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/2010-04-01/Accounts/{sid}/Messages.json", self._twilio)
        app.router.add_post("/", self._cloud)
        # handler_cancellation: a hanging handler ends when the client gives up, and stop()
        # releases the rest, so shutting down never waits for hang_s.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- test helpers -----------------------------------------------------------------------

    def deliver(self, records: Sequence[Sent] | None = None, *, ok: bool = True) -> None:
        """Marks records (default: all still "sent") delivered or failed, as a receipt would."""
        for record in records if records is not None else self.sent:
            if record.status == "sent":
                record.status = "delivered" if ok else "failed"
                if not ok:
                    record.error_code = record.error_code or "UNDELIV"

    def by_id(self, message_id: str) -> list[Sent]:
        return [s for s in self.sent if s.message_id == message_id]

    def receipt_body(self, carrier: Literal["aliyun", "tencent"], records: Sequence[Sent]) -> bytes:
        """The JSON receipt push the provider would send for ``records``."""
        if carrier == "aliyun":
            return json.dumps(
                [
                    {
                        "phone_number": r.phone.removeprefix("+86"),
                        "send_time": r.at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                        "report_time": r.at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                        "success": r.status == "delivered",
                        "err_code": "DELIVERED" if r.status == "delivered" else r.error_code,
                        "err_msg": "用户接收成功" if r.status == "delivered" else "失败",
                        "sms_size": "1",
                        "biz_id": r.provider_id,
                        "out_id": r.message_id,
                    }
                    for r in records
                ],
                ensure_ascii=False,
            ).encode()
        return json.dumps(
            [
                {
                    "user_receive_time": r.at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                    "nationcode": "86",
                    "mobile": r.phone.removeprefix("+86"),
                    "report_status": "SUCCESS" if r.status == "delivered" else "FAIL",
                    "errmsg": "DELIVRD" if r.status == "delivered" else (r.error_code or "FAIL"),
                    "description": "用户短信送达成功" if r.status == "delivered" else "失败",
                    "sid": r.provider_id,
                    "ext": r.message_id,
                }
                for r in records
            ],
            ensure_ascii=False,
        ).encode()

    def twilio_callback_form(self, record: Sent) -> dict[str, str]:
        """The status-callback form Twilio would post for ``record``."""
        form = {
            "MessageSid": record.provider_id,
            "SmsSid": record.provider_id,
            "AccountSid": self.twilio_account_sid,
            "MessageStatus": "delivered" if record.status == "delivered" else "undelivered",
            "To": record.phone,
            "ApiVersion": "2010-04-01",
        }
        if record.status == "failed":
            form["ErrorCode"] = "30003"
        return form

    async def push_receipts(
        self,
        carrier: CarrierKind,
        records: Sequence[Sent],
        *,
        url: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> list[int]:
        """POSTs the receipts of ``records`` as the provider would (Twilio: one signed form per
        message, to ``url`` or the message's StatusCallback; the others: one JSON array to
        ``url``). Returns the HTTP statuses answered."""
        own = session is None
        client = session or aiohttp.ClientSession()
        statuses: list[int] = []
        try:
            if carrier == "twilio":
                for record in records:
                    target = url or record.callback
                    assert target, "no URL for the Twilio callback"
                    form = self.twilio_callback_form(record)
                    signature = expected_signature(
                        self.twilio_auth_token, target, list(form.items())
                    )
                    async with client.post(
                        target, data=form, headers={"X-Twilio-Signature": signature}
                    ) as resp:
                        statuses.append(resp.status)
            else:
                assert url, "Aliyun and Tencent push to one configured URL"
                async with client.post(
                    url,
                    data=self.receipt_body(carrier, records),
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    statuses.append(resp.status)
        finally:
            if own:
                await client.close()
        return statuses

    # --- misbehaviour -----------------------------------------------------------------------

    def _mode(self, is_send: bool) -> Mode | None:
        if self.next_modes:
            return self.next_modes.pop(0)
        if is_send and self.fail_rate > 0 and self.rng.random() < self.fail_rate:
            return self.rng.choice(self.modes)
        return None

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), self.hang_s)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=204)

    async def _deliver_or_misbehave(
        self,
        request: web.Request,
        mode: Mode | None,
        record: Callable[[], None],
        ok: Callable[[], web.Response],
        error: Callable[[Mode], web.Response],
    ) -> web.Response:
        accepts = mode not in ("500", "429", "timeout_before", "drop_before")
        if self.record_first and accepts:
            # A provider that commits the message at once and answers slowly: a client that
            # gives up (or dies) meanwhile leaves the message with the provider.
            record()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if mode in ("500", "429"):
            return error(mode)
        if mode == "timeout_before":
            await self._hang()
            return error("500")
        if mode == "drop_before":
            return self._drop(request)
        if not self.record_first:
            record()
        if mode == "timeout":
            await self._hang()
        elif mode == "drop":
            return self._drop(request)
        return ok()

    async def _seen(self, request: web.Request, carrier: CarrierKind, action: str) -> Seen:
        body = await request.read()
        seen = Seen(
            carrier=carrier,
            action=action,
            method=request.method,
            path=request.path,
            query=list(request.rel_url.query.items()),
            headers=dict(request.headers),
            body=body,
        )
        self.seen.append(seen)
        return seen

    # --- Twilio -----------------------------------------------------------------------------

    @staticmethod
    def _twilio_error(status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )

    def _twilio_auth(self, request: web.Request) -> None:
        expected = "Basic " + base64.b64encode(
            f"{self.twilio_account_sid}:{self.twilio_auth_token}".encode()
        ).decode("ascii")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise _Reject(self._twilio_error(401, 20003, "Authenticate"))
        if request.match_info["sid"] != self.twilio_account_sid:
            raise _Reject(self._twilio_error(404, 20404, "The requested resource was not found"))

    def _twilio_json(self, record: Sent) -> dict[str, Any]:
        created = format_datetime(record.at.astimezone(UTC), usegmt=True)
        status = {"sent": "sent", "delivered": "delivered", "failed": "undelivered"}
        return {
            "sid": record.provider_id,
            "account_sid": self.twilio_account_sid,
            "to": record.phone,
            "from": record.sign,
            "body": record.text,
            "status": status[record.status],
            "direction": "outbound-api",
            "date_created": created,
            "date_updated": created,
            "date_sent": created,
            "error_code": int(record.error_code) if record.error_code else None,
            "error_message": None,
            "num_segments": "1",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.twilio_account_sid}/Messages/"
            f"{record.provider_id}.json",
        }

    async def _twilio(self, request: web.Request) -> web.Response:
        action = "create" if request.method == "POST" else "list"
        seen = await self._seen(request, "twilio", action)
        try:
            self._twilio_auth(request)
        except _Reject as reject:
            return reject.response
        if request.method == "GET":
            seen.accepted = True
            return await self._twilio_list(request)
        if request.method != "POST":
            return self._twilio_error(405, 20004, "Method not allowed")
        form = [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
        seen.form = form
        fields = dict(form)
        to = fields.get("To", "")
        if not to:
            return self._twilio_error(400, 21604, "A 'To' phone number is required.")
        if not fields.get("Body"):
            return self._twilio_error(400, 21602, "Message body is required.")
        if not fields.get("From") and not fields.get("MessagingServiceSid"):
            return self._twilio_error(400, 21603, "A 'From' phone number is required.")
        mode = self._mode(is_send=True)
        permanent = self.permanent.get(to)
        if permanent == "opted_out" or self.error_codes.get(to) == "21610":
            return self._twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        if permanent == "invalid_number":
            return self._twilio_error(
                400, 21211, f"The 'To' number {to} is not a valid phone number."
            )
        if to in self.error_codes:
            code = int(self.error_codes[to])
            return self._twilio_error(429 if code == 20429 else 400, code, "forced error")
        sid = "SM" + uuid.uuid4().hex
        record = Sent(
            carrier="twilio",
            message_id=_ref(fields.get("StatusCallback")),
            phone=to,
            text=fields["Body"],
            template=None,
            params=None,
            provider_id=sid,
            at=self.now(),
            callback=fields.get("StatusCallback"),
            sign=fields.get("From") or fields.get("MessagingServiceSid"),
        )

        def keep() -> None:
            seen.accepted = True
            self.sent.append(record)

        def ok() -> web.Response:
            data = self._twilio_json(record)
            data.update(status="queued", date_sent=None)
            return web.json_response(data, status=201)

        def error(which: Mode) -> web.Response:
            if which == "429":
                response = self._twilio_error(429, 20429, "Too Many Requests")
                response.headers["Retry-After"] = "1"
                return response
            return self._twilio_error(500, 20500, "Internal Server Error")

        return await self._deliver_or_misbehave(request, mode, keep, ok, error)

    async def _twilio_list(self, request: web.Request) -> web.Response:
        mode = self._mode(is_send=False)
        if mode is not None:
            return self._twilio_error(500, 20500, "Internal Server Error")
        query = request.rel_url.query
        to = query.get("To")
        sender = query.get("From")
        after = query.get("DateSent>")
        records = [r for r in self.sent if r.carrier == "twilio"]
        if to:
            records = [r for r in records if r.phone == to]
        if sender:
            records = [r for r in records if r.sign == sender]
        if after:
            day = after[:10]
            records = [r for r in records if r.at.astimezone(UTC).strftime("%Y-%m-%d") >= day]
        records.sort(key=lambda r: r.at, reverse=True)  # most recent first, as Twilio lists
        size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        chunk = records[page * size : (page + 1) * size]
        next_uri = None
        if (page + 1) * size < len(records):
            params = [(k, v) for k, v in query.items() if k != "Page"] + [("Page", str(page + 1))]
            next_uri = f"{request.path}?{urlencode(params)}"
        return web.json_response(
            {
                "messages": [self._twilio_json(r) for r in chunk],
                "page": page,
                "page_size": size,
                "next_page_uri": next_uri,
                "uri": str(request.rel_url),
            }
        )

    # --- Aliyun and Tencent: one path, told apart by their action header ----------------------

    async def _cloud(self, request: web.Request) -> web.Response:
        if "X-TC-Action" in request.headers:
            return await self._tencent(request)
        if "x-acs-action" in request.headers:
            return await self._aliyun(request)
        return web.json_response({"error": "unknown API"}, status=404)

    # --- Aliyun -----------------------------------------------------------------------------

    @staticmethod
    def _aliyun_error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {
                "RequestId": str(uuid.uuid4()).upper(),
                "HostId": "dysmsapi.aliyuncs.com",
                "Code": code,
                "Message": message,
                "Recommend": "https://api.aliyun.com/troubleshoot",
            },
            status=status,
        )

    def _aliyun_verify(self, request: web.Request, body: bytes) -> None:
        """ACS3-HMAC-SHA256 as the V3 signature document describes it."""
        auth = request.headers.get("Authorization", "")
        algorithm, _, rest = auth.partition(" ")
        parts = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
        if algorithm != "ACS3-HMAC-SHA256" or not {
            "Credential",
            "SignedHeaders",
            "Signature",
        } <= set(parts):
            raise _Reject(
                self._aliyun_error(400, "IncompleteSignature", "Authorization is malformed")
            )
        secret = self.aliyun_keys.get(parts["Credential"])
        if secret is None:
            raise _Reject(
                self._aliyun_error(
                    404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
                )
            )
        body_hash = hashlib.sha256(body).hexdigest()
        if request.headers.get("x-acs-content-sha256") != body_hash:
            raise _Reject(self._aliyun_error(400, "SignatureDoesNotMatch", "body hash mismatch"))
        signed_names = parts["SignedHeaders"].split(";")
        required = {
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
        }
        if not required <= set(signed_names) or signed_names != sorted(signed_names):
            raise _Reject(
                self._aliyun_error(400, "IncompleteSignature", "required headers not signed")
            )
        canonical_headers = ""
        for name in signed_names:
            values = request.headers.getall(name, [])
            canonical_headers += f"{name}:{','.join(sorted(v.strip() for v in values))}\n"
        query = sorted(request.rel_url.query.items())
        canonical_query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in query)
        canonical = "\n".join(
            [
                request.method,
                request.path,
                canonical_query,
                canonical_headers,
                parts["SignedHeaders"],
                body_hash,
            ]
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["Signature"]):
            raise _Reject(
                self._aliyun_error(
                    400,
                    "SignatureDoesNotMatch",
                    "Specified signature is not matched with our calculation.",
                )
            )
        if self.check_time:
            try:
                when = datetime.strptime(request.headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
            except (KeyError, ValueError):
                raise _Reject(
                    self._aliyun_error(400, "InvalidTimeStamp.Format", "bad x-acs-date")
                ) from None
            if abs(when.replace(tzinfo=UTC).timestamp() - time.time()) > 900:
                raise _Reject(self._aliyun_error(400, "InvalidTimeStamp.Expired", "time expired"))
        nonce = request.headers["x-acs-signature-nonce"]
        if nonce in self._nonces:
            raise _Reject(self._aliyun_error(400, "SignatureNonceUsed", "nonce already used"))
        self._nonces.add(nonce)

    async def _aliyun(self, request: web.Request) -> web.Response:
        action = request.headers["x-acs-action"]
        seen = await self._seen(request, "aliyun", action)
        try:
            self._aliyun_verify(request, seen.body)
        except _Reject as reject:
            return reject.response
        if request.headers.get("x-acs-version") != "2017-05-25":
            return self._aliyun_error(
                400, "InvalidVersion", "Specified parameter Version is not valid."
            )
        params = dict(request.rel_url.query)
        if action == "QuerySendDetails":
            seen.accepted = True
            return self._aliyun_query(params)
        if action != "SendSms":
            return self._aliyun_error(404, "InvalidAction.NotFound", "Specified api is not found")
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return self._aliyun_error(
                    400, f"Missing{name}", f"{name} is mandatory for this action."
                )
        phone = _aliyun_e164(params["PhoneNumbers"])
        if phone is None:
            return web.json_response(_aliyun_body("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"))
        try:
            template_params = (
                json.loads(params["TemplateParam"]) if params.get("TemplateParam") else {}
            )
        except ValueError:
            return web.json_response(_aliyun_body("isv.INVALID_JSON_PARAM", "JSON参数不合法"))
        mode = self._mode(is_send=True)
        if self.permanent.get(phone) == "invalid_number":
            return web.json_response(_aliyun_body("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"))
        if phone in self.error_codes:
            return web.json_response(_aliyun_body(self.error_codes[phone], "forced error"))
        record = Sent(
            carrier="aliyun",
            message_id=params.get("OutId"),
            phone=phone,
            text=None,
            template=params["TemplateCode"],
            params=template_params,
            provider_id=f"{next(self._ids):012d}^0",
            at=self.now(),
            sign=params["SignName"],
        )
        if self.permanent.get(phone) == "opted_out":
            # Aliyun takes the send and reports the unsubscribe in the receipt.
            record.status = "failed"
            record.error_code = "MOBILE_IN_BLACK"

        def keep() -> None:
            seen.accepted = True
            self.sent.append(record)

        def ok() -> web.Response:
            body = _aliyun_body("OK", "OK")
            body["BizId"] = record.provider_id
            return web.json_response(body)

        def error(which: Mode) -> web.Response:
            if which == "429":
                response = self._aliyun_error(
                    429, "Throttling.User", "Request was denied due to user flow control."
                )
                response.headers["Retry-After"] = "1"
                return response
            return self._aliyun_error(
                500, "InternalError", "The request processing has failed due to some unknown error."
            )

        return await self._deliver_or_misbehave(request, mode, keep, ok, error)

    def _aliyun_query(self, params: dict[str, str]) -> web.Response:
        mode = self._mode(is_send=False)
        if mode is not None:
            return self._aliyun_error(500, "InternalError", "unknown error")
        phone = _aliyun_e164(params.get("PhoneNumber", ""))
        day = params.get("SendDate", "")
        size = int(params.get("PageSize", "10"))
        page = int(params.get("CurrentPage", "1"))
        if phone is None or len(day) != 8 or not 1 <= size <= 50 or page < 1:
            return web.json_response(_aliyun_body("isv.INVALID_PARAMETERS", "参数异常"))
        records = [
            r
            for r in self.sent
            if r.carrier == "aliyun"
            and r.phone == phone
            and r.at.astimezone(CHINA_TZ).strftime("%Y%m%d") == day
        ]
        records.sort(key=lambda r: r.at, reverse=True)
        chunk = records[(page - 1) * size : page * size]
        status = {"sent": 1, "failed": 2, "delivered": 3}
        body = _aliyun_body("OK", "OK")
        body["TotalCount"] = len(records)
        body["SmsSendDetailDTOs"] = {
            "SmsSendDetailDTO": [
                {
                    "PhoneNum": params["PhoneNumber"],
                    "SendStatus": status[r.status],
                    "ErrCode": r.error_code or ("DELIVERED" if r.status == "delivered" else ""),
                    "TemplateCode": r.template,
                    "Content": f"【{r.sign}】" + json.dumps(r.params, ensure_ascii=False),
                    "SendDate": r.at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                    "ReceiveDate": r.at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                    "OutId": r.message_id or "",
                }
                for r in chunk
            ]
        }
        return web.json_response(body)

    # --- Tencent ----------------------------------------------------------------------------

    @staticmethod
    def _tencent_error(code: str, message: str) -> web.Response:
        # Tencent answers API errors with HTTP 200 and an Error object.
        return web.json_response(
            {
                "Response": {
                    "Error": {"Code": code, "Message": message},
                    "RequestId": str(uuid.uuid4()),
                }
            }
        )

    def _tencent_verify(self, request: web.Request, body: bytes) -> None:
        """TC3-HMAC-SHA256 as the signature v3 document describes it."""
        auth = request.headers.get("Authorization", "")
        algorithm, _, rest = auth.partition(" ")
        parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
        if algorithm != "TC3-HMAC-SHA256" or not {
            "Credential",
            "SignedHeaders",
            "Signature",
        } <= set(parts):
            raise _Reject(
                self._tencent_error("AuthFailure.InvalidAuthorization", "Authorization malformed")
            )
        secret_id, _, scope = parts["Credential"].partition("/")
        secret = self.tencent_keys.get(secret_id)
        if secret is None:
            raise _Reject(
                self._tencent_error("AuthFailure.SecretIdNotFound", "The SecretId is not found")
            )
        day, _, rest_scope = scope.partition("/")
        service, _, terminator = rest_scope.partition("/")
        timestamp = request.headers.get("X-TC-Timestamp", "")
        if not timestamp.isdigit() or terminator != "tc3_request":
            raise _Reject(
                self._tencent_error("AuthFailure.InvalidAuthorization", "bad credential scope")
            )
        if datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d") != day:
            raise _Reject(
                self._tencent_error("AuthFailure.SignatureFailure", "scope date mismatch")
            )
        signed_names = parts["SignedHeaders"].split(";")
        if "host" not in signed_names or "content-type" not in signed_names:
            raise _Reject(
                self._tencent_error(
                    "AuthFailure.SignatureFailure", "content-type;host must be signed"
                )
            )
        canonical_headers = "".join(
            f"{n}:{request.headers.get(n, '').strip().lower()}\n" for n in signed_names
        )
        canonical = "\n".join(
            [
                request.method,
                request.path,
                request.rel_url.raw_query_string,
                canonical_headers,
                parts["SignedHeaders"],
                hashlib.sha256(body).hexdigest(),
            ]
        )
        to_sign = "\n".join(
            ["TC3-HMAC-SHA256", timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = ("TC3" + secret).encode()
        for part in (day, service, "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["Signature"]):
            raise _Reject(
                self._tencent_error(
                    "AuthFailure.SignatureFailure",
                    "The provided credentials could not be validated. Please check your signature is correct.",
                )
            )
        if self.check_time and abs(int(timestamp) - time.time()) > 300:
            raise _Reject(self._tencent_error("AuthFailure.SignatureExpire", "Signature expired"))

    async def _tencent(self, request: web.Request) -> web.Response:
        action = request.headers["X-TC-Action"]
        seen = await self._seen(request, "tencent", action)
        try:
            self._tencent_verify(request, seen.body)
        except _Reject as reject:
            return reject.response
        if request.headers.get("X-TC-Version") != "2021-01-11":
            return self._tencent_error("InvalidParameter", "unsupported version")
        try:
            payload = json.loads(seen.body)
        except ValueError:
            return self._tencent_error("FailedOperation.JsonParseFail", "bad JSON")
        if not isinstance(payload, dict):
            return self._tencent_error("FailedOperation.JsonParseFail", "bad JSON")
        if payload.get("SmsSdkAppId") != self.tencent_sdk_app_id:
            return self._tencent_error("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SdkAppId")
        if action == "PullSmsSendStatusByPhoneNumber":
            seen.accepted = True
            return self._tencent_pull(payload)
        if action != "SendSms":
            return self._tencent_error("InvalidAction", "unknown action")
        phones = payload.get("PhoneNumberSet")
        if not isinstance(phones, list) or not phones:
            return self._tencent_error("MissingParameter.EmptyPhoneNumberSet", "empty")
        mode = self._mode(is_send=True)
        context = payload.get("SessionContext") or None
        records: list[Sent] = []
        statuses: list[dict[str, Any]] = []
        for phone in phones:
            status: dict[str, Any] = {
                "SerialNo": "",
                "PhoneNumber": phone,
                "Fee": 0,
                "SessionContext": context or "",
                "IsoCode": "CN" if str(phone).startswith("+86") else "DEF",
            }
            permanent = self.permanent.get(phone)
            forced = self.error_codes.get(phone)
            if not isinstance(phone, str) or not phone.startswith("+") or not phone[1:].isdigit():
                status.update(
                    Code="InvalidParameterValue.IncorrectPhoneNumber", Message="bad number"
                )
            elif permanent == "invalid_number":
                status.update(
                    Code="InvalidParameterValue.IncorrectPhoneNumber", Message="手机号格式错误"
                )
            elif permanent == "opted_out":
                status.update(
                    Code="FailedOperation.PhoneNumberInBlacklist", Message="手机号在免打扰名单库中"
                )
            elif forced:
                status.update(Code=forced, Message="forced error")
            else:
                serial = f"2640:{next(self._ids):019d}"
                status.update(SerialNo=serial, Fee=1, Code="Ok", Message="send success")
                records.append(
                    Sent(
                        carrier="tencent",
                        message_id=context,
                        phone=phone,
                        text=None,
                        template=str(payload.get("TemplateId")),
                        params=list(payload.get("TemplateParamSet") or []),
                        provider_id=serial,
                        at=self.now(),
                        sign=payload.get("SignName"),
                    )
                )
            statuses.append(status)

        def keep() -> None:
            seen.accepted = True
            self.sent.extend(records)

        def ok() -> web.Response:
            return web.json_response(
                {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}
            )

        def error(which: Mode) -> web.Response:
            if which == "429":
                return self._tencent_error(
                    "RequestLimitExceeded",
                    "Your current request times equals to `21` in a second, which exceeds the frequency limit `20` for a second. Please reduce the frequency of calls.",
                )
            return web.Response(status=502, text="Bad Gateway")

        return await self._deliver_or_misbehave(request, mode, keep, ok, error)

    def _tencent_pull(self, payload: dict[str, Any]) -> web.Response:
        mode = self._mode(is_send=False)
        if mode is not None:
            return self._tencent_error("InternalError.OtherError", "other error")
        phone = payload.get("PhoneNumber")
        begin = int(payload.get("BeginTime", 0))
        end = int(payload.get("EndTime", 0))
        offset = int(payload.get("Offset", 0))
        limit = min(int(payload.get("Limit", 100)), 100)
        # Only messages with a receipt are listed: this API pulls delivery reports.
        records = [
            r
            for r in self.sent
            if r.carrier == "tencent"
            and r.phone == phone
            and r.status != "sent"
            and begin <= int(r.at.timestamp()) <= end
        ]
        chunk = records[offset : offset + limit]
        return web.json_response(
            {
                "Response": {
                    "PullSmsSendStatusSet": [
                        {
                            "UserReceiveTime": int(r.at.timestamp()),
                            "CountryCode": "86",
                            "SubscriberNumber": r.phone.removeprefix("+86"),
                            "PhoneNumber": r.phone,
                            "SerialNo": r.provider_id,
                            "ReportStatus": "SUCCESS" if r.status == "delivered" else "FAIL",
                            "Description": "DELIVRD"
                            if r.status == "delivered"
                            else (r.error_code or "FAIL"),
                            "SessionContext": (r.message_id or "")
                            if self.tencent_echo_session_context
                            else "",
                        }
                        for r in chunk
                    ],
                    "RequestId": str(uuid.uuid4()),
                }
            }
        )


def _aliyun_body(code: str, message: str) -> dict[str, Any]:
    return {"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper()}


def _aliyun_e164(number: str) -> str | None:
    digits = number.strip()
    if not digits.isdigit():
        return None
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    if 8 <= len(digits) <= 15:
        return "+" + digits
    return None


def _ref(callback: str | None) -> str | None:
    if not callback:
        return None
    values = [v for k, v in parse_qsl(urlsplit(callback).query) if k == "ref"]
    return values[-1] if values else None


# --- helpers for the carrier tests ----------------------------------------------------------------

PHONE = "+8613800138000"
# For tests of signing and request building, which never touch the HTTP session.
OFFLINE = cast(aiohttp.ClientSession, None)
# Small, so the timeout paths cost a fraction of a second each; the fake answers in
# milliseconds otherwise.
SHORT_TIMEOUT_S = 0.3


def message(**overrides: Any) -> CarrierMessage:
    fields: dict[str, Any] = {
        "id": "out-0001",
        "phone": PHONE,
        "text": "【测试】您的账单已逾期，请于3日内还款。拒收请回复R",
        "template": "overdue_reminder",
        "codes": {"aliyun": "SMS_123456789", "tencent": "1234567"},
        "params": {"name": "张三", "amount": "1,200.00", "days": "3"},
    }
    fields.update(overrides)
    return CarrierMessage(**fields)


def outcome_of(parse: Callable[[], T]) -> T | WebhookError:
    """What a parser returns, or the WebhookError it raises (any other exception escapes)."""
    try:
        return parse()
    except WebhookError as exc:
        return exc


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- hypothesis: arbitrary JSON, and JSON shaped like a receipt push -------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def receipt_items(keys: list[str]) -> st.SearchStrategy[bytes]:
    """JSON bodies whose items use the provider's field names with arbitrary values."""
    values = json_scalars | st.sampled_from(
        ["SUCCESS", "FAIL", "true", "false", "2024-01-02 03:04:05", "13800138000", "86", "DELIVRD"]
    )
    item = st.fixed_dictionaries({}, optional={k: values for k in keys})
    return st.one_of(
        st.lists(item, max_size=3).map(lambda xs: json.dumps(xs).encode()),
        item.map(lambda x: json.dumps(x).encode()),
        json_values.map(lambda x: json.dumps(x).encode()),
    )


# --- flows whose templates carry the template carriers' codes ---------------------------------


def flows_with_codes(dest: Path) -> Path:
    """A copy of the shipped flows and templates under ``dest`` in which every template has an
    Aliyun and a Tencent template code (as an operator's would once approved), and the flows
    declare both providers. Returns the flows directory (``SMSBOT_FLOWS_DIR``)."""
    import yaml

    root = Path(__file__).resolve().parents[2] / "dialogs"
    for sub in ("flows", "templates"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(sorted((root / "templates").glob("*.yaml"))):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for j, spec in enumerate(data["templates"].values()):
            spec["codes"] = {"aliyun": f"SMS_{90000000 + 100 * i + j}", "tencent": str(2000 + j)}
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        (dest / "templates" / path.name).write_text(text, encoding="utf-8")
    for path in sorted((root / "flows").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["settings"]["providers"] = ["aliyun", "tencent"]
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        (dest / "flows" / path.name).write_text(text, encoding="utf-8")
    return dest / "flows"

"""Alibaba Cloud SMS (Dysmsapi 2017-05-25): send, reconcile, and the SmsReport push.

API docs used:

* SendSms (Dysmsapi 2017-05-25) — ``PhoneNumbers`` (mainland: the 11-digit number without
  +86; international/HK/Macao/Taiwan: country code + number, no ``+``), ``SignName``,
  ``TemplateCode``, ``TemplateParam`` (a JSON string), ``OutId`` (echoed in receipts and in
  QuerySendDetails); answers ``{"Code": "OK", "BizId": …}`` or an error ``Code``. Not
  idempotent: a timed-out send must be reconciled before it is retried.
* QuerySendDetails — ``PhoneNumber``, ``SendDate`` (yyyyMMdd, the last 30 days), ``PageSize``
  (1–50), ``CurrentPage``; each record has ``OutId``, ``SendStatus`` (1 waiting for the
  receipt, 2 failed, 3 delivered), ``ErrCode``, ``SendDate``, ``TemplateCode`` — but no BizId.
* SmsReport (HTTP batch push) — a JSON array of ``phone_number``, ``success``, ``err_code``,
  ``err_msg``, ``report_time`` (yyyy-MM-dd HH:mm:ss, Beijing time), ``biz_id``, ``out_id``.
* API error codes (国内消息API错误码) and receipt codes (回执错误码) — :data:`CODES`.
* Request signature V3 (``ACS3-HMAC-SHA256``) — see below.

Signature: **ACS3-HMAC-SHA256** (Alibaba Cloud "V3 request signature"), not the older RPC
HMAC-SHA1 v1.0, because it is what Alibaba Cloud recommends for all APIs today and what the
current official SDK (``alibabacloud-tea-openapi`` behind ``alibabacloud_dysmsapi20170525``)
sends by default; it uses SHA-256 and also signs the host, the action, the version, the time,
the nonce and the hash of the body, where v1.0 signs only the parameters with SHA-1. The
parameters travel in the query of a ``POST /`` with an empty body, exactly as that SDK sends
them, so our request can be compared with the SDK's byte for byte.

Canonical request (V3): ``METHOD\\n/\\n<sorted, RFC 3986-encoded query>\\n<lower-cased signed
headers "name:value\\n"…>\\n<signed header names joined by ;>\\n<hex sha256 of the body>``;
string to sign ``ACS3-HMAC-SHA256\\n<hex sha256 of the canonical request>``; signature
``hex(HMAC-SHA256(AccessKeySecret, string to sign))``; header ``Authorization:
ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<names>,Signature=<hex>``.

What :meth:`AliyunCarrier.lookup` can prove: QuerySendDetails echoes ``OutId`` (our id), so a
record with our id is ``found``, however many identical texts were sent. ``absent`` is
answered only when every record of the number on every day of the window was listed, none
lacks an OutId, and ``sent_after`` is older than a settle delay (the records are not documented
to be readable the moment SendSms answers; before the delay: ``unsupported`` with code
``TOO_RECENT``). The delay counts from ``sent_after``, so a caller that passes it with clock
slack shortens the real wait by that slack. Older than 30 days is beyond the API: unsupported.

Unsubscribes: Aliyun accepts a send to an unsubscribed number and reports it later, in the
receipt and in QuerySendDetails (``ErrCode`` ``MOBILE_IN_BLACK``); :data:`OPT_OUT_CODES` lets
the receipt handler recognise it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import quote

import aiohttp
from yarl import URL

from bot.outbound.carriers._http import (
    Answer,
    NoAnswer,
    aware,
    exchange,
    host_header,
    json_object,
    retry_after_s,
    short,
    utc_now,
)
from bot.outbound.carriers.base import (
    Carrier,
    CarrierMessage,
    CarrierName,
    LookupResult,
    Receipt,
    ReceiptState,
    SendOutcome,
)
from bot.privacy import mask_phone
from bot.transport.inbound import (
    WebhookError,
    field_name,
    json_type,
    load_json_objects,
    optional_str,
    parse_phone,
)

log = logging.getLogger(__name__)

API_VERSION: Final = "2017-05-25"
ALGORITHM: Final = "ACS3-HMAC-SHA256"
# Beijing time; a fixed +08:00 is exact (no DST since 1991) and needs no tzdata.
CHINA_TZ: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
QUERY_DAYS: Final = 30  # QuerySendDetails keeps the last 30 days
# LookupResult.code when absence is not provable *yet*: asking again later may answer it.
TOO_RECENT: Final = "TOO_RECENT"

Kind = Literal["retry", "ambiguous", "opted_out", "invalid_number", "config", "failed"]

# Error and receipt codes → what they mean for us (API error codes doc and 回执错误码).
# An unlisted code on a 2xx or 4xx answer is a permanent failure of this message.
CODES: Final[dict[str, tuple[Kind, str]]] = {
    "isv.BUSINESS_LIMIT_CONTROL": ("retry", "per-number frequency control (1/min, 5/h…)"),
    "isv.DAY_LIMIT_CONTROL": ("retry", "the account's daily send cap was reached"),
    "Throttling": ("retry", "API throttled"),
    "Throttling.User": ("retry", "API throttled for this account"),
    "Throttling.Api": ("retry", "API throttled for this operation"),
    "isv.QPS_LIMIT_CONTROL": ("retry", "QPS limit reached"),
    "SignatureNonceUsed": ("retry", "nonce reused; a new attempt signs with a new nonce"),
    "isp.SYSTEM_ERROR": ("ambiguous", "Aliyun system error: it may have sent the message"),
    "InternalError": ("ambiguous", "Aliyun internal error: it may have sent the message"),
    "ServiceUnavailable": ("ambiguous", "service unavailable mid-request"),
    "MOBILE_IN_BLACK": ("opted_out", "the number unsubscribed from this sign / carrier blacklist"),
    "isv.MOBILE_NUMBER_ILLEGAL": ("invalid_number", "not a valid mobile number"),
    "SignatureDoesNotMatch": ("config", "signature rejected: check the AccessKey secret"),
    "IncompleteSignature": ("config", "signature incomplete"),
    "InvalidAccessKeyId.NotFound": ("config", "unknown AccessKey id"),
    "InvalidAccessKeyId.Inactive": ("config", "the AccessKey is disabled"),
    "InvalidTimeStamp.Expired": ("config", "request time too far off: check the clock"),
    "isp.RAM_PERMISSION_DENY": ("config", "the RAM user lacks dysms permissions"),
    "Forbidden.RAM": ("config", "the RAM user lacks dysms permissions"),
    "isv.OUT_OF_SERVICE": ("config", "service suspended (balance)"),
    "isv.AMOUNT_NOT_ENOUGH": ("config", "balance too low"),
    "isv.PRODUCT_UN_SUBSCRIPT": ("config", "the account has not enabled SMS"),
    "isv.PRODUCT_UNSUBSCRIBE": ("config", "the product is not enabled"),
    "isv.ACCOUNT_NOT_EXISTS": ("config", "account does not exist"),
    "isv.ACCOUNT_ABNORMAL": ("config", "account abnormal"),
    "isv.SMS_TEMPLATE_ILLEGAL": ("config", "unknown or unapproved template code"),
    "isv.SMS_SIGNATURE_ILLEGAL": ("config", "unknown or unapproved sign name"),
    "isv.SMS_SIGN_ILLEGAL": ("config", "the sign name may not be used"),
    "isv.SIGN_STATE_ILLEGAL": ("config", "the sign name is unavailable"),
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": ("config", "sign and template types do not match"),
    "isv.TEMPLATE_MISSING_PARAMETERS": ("config", "the template needs parameters we lack"),
    "isv.DENY_IP_RANGE": ("config", "sending from this IP region is not allowed"),
    "isv.EXTEND_CODE_ERROR": ("config", "extension code used by several signs"),
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": ("config", "an international template for a CN number"),
    "isv.MONTH_LIMIT_CONTROL": ("config", "the monthly cap set in the console was reached"),
    "isv.SMS_TEST_NUMBER_LIMIT": ("config", "test sign: only bound test numbers"),
    "isv.INVALID_PARAMETERS": ("failed", "invalid parameters"),
    "isv.INVALID_JSON_PARAM": ("failed", "TemplateParam is not valid (string values only)"),
    "isv.BLACK_KEY_CONTROL_LIMIT": ("failed", "a template variable holds a blacklisted keyword"),
    "isv.PARAM_LENGTH_LIMIT": ("failed", "a template variable is too long"),
    "isv.PARAM_NOT_SUPPORT_URL": ("failed", "URLs are not allowed in variables"),
    "isv.SMS_CONTENT_ILLEGAL": ("failed", "the content is not allowed"),
    "isv.TEMPLATE_PARAMS_ILLEGAL": ("failed", "a variable holds an illegal keyword"),
    "isv.MOBILE_COUNT_OVER_LIMIT": ("failed", "too many numbers in one request"),
}
OPT_OUT_CODES: Final = frozenset(c for c, (k, _) in CODES.items() if k == "opted_out")
INVALID_NUMBER_CODES: Final = frozenset(c for c, (k, _) in CODES.items() if k == "invalid_number")


def _kind(code: str) -> tuple[Kind, str] | None:
    if code in CODES:
        return CODES[code]
    if code.startswith("Throttling"):
        return ("retry", "API throttled")
    return None


class AliyunCarrier(Carrier):
    name: CarrierName = "aliyun"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        endpoint: str = "https://dysmsapi.aliyuncs.com",
        timeout_s: float = 10.0,
        now: Callable[[], datetime] | None = None,
        nonce: Callable[[], str] | None = None,
        absent_after_s: float = 300.0,
        lookup_pages: int = 10,
        page_size: int = 50,
    ) -> None:
        self._session = session
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._sign = sign_name
        self._endpoint = URL(endpoint.rstrip("/") + "/")
        self._timeout_s = timeout_s
        self._now = now or utc_now
        self._nonce = nonce or (lambda: uuid.uuid4().hex)
        self._absent_after = timedelta(seconds=absent_after_s)
        self._pages = lookup_pages
        self._page_size = min(max(page_size, 1), 50)

    def __repr__(self) -> str:  # never the secret
        return f"AliyunCarrier(access_key_id={self._key_id!r}, endpoint={str(self._endpoint)!r})"

    def check(self, message: CarrierMessage) -> str | None:
        if not message.codes.get("aliyun"):
            return f"template {message.template!r} has no Aliyun template code (codes.aliyun)"
        return None

    def send_params(self, message: CarrierMessage) -> dict[str, str]:
        """The SendSms parameters for ``message`` (``check`` must have passed)."""
        params = {
            "PhoneNumbers": aliyun_phone(message.phone),
            "SignName": self._sign,
            "TemplateCode": message.codes["aliyun"],
            "OutId": message.id,
        }
        if message.params:
            # Aliyun takes string values only (isv.INVALID_JSON_PARAM otherwise), which
            # CarrierMessage.params already guarantees.
            params["TemplateParam"] = json.dumps(message.params, ensure_ascii=False)
        return params

    def signed(self, action: str, params: Mapping[str, str]) -> tuple[URL, dict[str, str]]:
        """The URL and headers of a signed ``POST /?<params>`` call of ``action``."""
        query = canonical_query(params)
        url = URL(f"{self._endpoint}?{query}" if query else str(self._endpoint), encoded=True)
        headers = {
            "host": host_header(url),
            "x-acs-action": action,
            "x-acs-version": API_VERSION,
            "x-acs-date": aware(self._now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": self._nonce(),
            "x-acs-content-sha256": _EMPTY_SHA256,
        }
        headers["Authorization"] = authorization(
            method="POST",
            path=url.raw_path or "/",
            query=params,
            headers=headers,
            payload_sha256=_EMPTY_SHA256,
            access_key_id=self._key_id,
            access_key_secret=self._secret,
        )
        headers["Accept"] = "application/json"
        return url, headers

    async def _call(self, action: str, params: Mapping[str, str]) -> Answer | NoAnswer:
        url, headers = self.signed(action, params)
        return await exchange(
            self._session, "POST", url, headers=headers, data=None, timeout_s=self._timeout_s
        )

    async def send(self, message: CarrierMessage) -> SendOutcome:
        reason = self.check(message)
        if reason:
            return SendOutcome(status="failed", code="NO_TEMPLATE_CODE", detail=reason)
        answer = await self._call("SendSms", self.send_params(message))
        outcome = answer.outcome() if isinstance(answer, NoAnswer) else self._classify(answer)
        if outcome.status != "sent":
            log.info(
                "aliyun send %s to %s: %s %s",
                message.id,
                mask_phone(message.phone),
                outcome.status,
                outcome.code,
            )
        return outcome

    def _classify(self, answer: Answer) -> SendOutcome:
        data = json_object(answer.body)
        code = data.get("Code") if data else None
        text = data.get("Message") if data else None
        detail = short(text) if isinstance(text, str) else None
        if 200 <= answer.status < 300:
            if not isinstance(code, str):
                return SendOutcome(
                    status="ambiguous", code=str(answer.status), detail="unparsable answer"
                )
            if code == "OK":
                biz = data.get("BizId") if data else None
                return SendOutcome(status="sent", provider_id=str(biz) if biz else None)
        wait = retry_after_s(answer.headers.get("Retry-After"), self._now)
        if isinstance(code, str) and (kind := _kind(code)) is not None:
            return _outcome(kind, code, detail, wait)
        if answer.status == 429:
            return SendOutcome(
                status="retry", code=code or "429", detail=detail, retry_after_s=wait
            )
        if answer.status >= 500:
            return SendOutcome(status="ambiguous", code=code or str(answer.status), detail=detail)
        if answer.status in (401, 403, 404):
            return SendOutcome(
                status="failed",
                code=code or str(answer.status),
                detail=f"configuration (HTTP {answer.status}): {detail or 'credentials or URL'}",
                config_error=True,
            )
        return SendOutcome(
            status="failed",
            code=code if isinstance(code, str) else str(answer.status),
            detail=detail or f"HTTP {answer.status}",
        )

    async def lookup(self, message: CarrierMessage, sent_after: datetime) -> LookupResult:
        since = aware(sent_after)
        now = aware(self._now())
        first = since.astimezone(CHINA_TZ).date()
        last = now.astimezone(CHINA_TZ).date()
        if (last - first).days >= QUERY_DAYS:
            return LookupResult(status="unsupported", detail="beyond QuerySendDetails' 30 days")
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)] or [first]
        if len(days) > 3:
            return LookupResult(status="unsupported", detail="window longer than 3 days")
        records: list[dict[str, Any]] = []
        for day in days:
            listed = await self._list_day(message, day)
            if isinstance(listed, LookupResult):
                found = _find(records, message.id)
                return found or listed
            records.extend(listed)
        found = _find(records, message.id)
        if found:
            return found
        template = message.codes.get("aliyun")
        for record in records:
            sent = _china_time(record.get("SendDate"))
            # A record of ours without the OutId we sent cannot be ruled out as this message.
            if (
                not record.get("OutId")
                and record.get("TemplateCode") in (template, None)
                and (sent is None or sent >= since - timedelta(seconds=1))
            ):
                return LookupResult(
                    status="unsupported", detail="a record in the window has no OutId"
                )
        if now - since < self._absent_after:
            return LookupResult(
                status="unsupported",
                code=TOO_RECENT,
                detail=f"too recent to call absent (settle delay {self._absent_after})",
            )
        return LookupResult(status="absent")

    async def _list_day(
        self, message: CarrierMessage, day: date
    ) -> list[dict[str, Any]] | LookupResult:
        """Every record of one day, or why not (a LookupResult)."""
        records: list[dict[str, Any]] = []
        for page in range(1, self._pages + 1):
            params = {
                "PhoneNumber": aliyun_phone(message.phone),
                "SendDate": day.strftime("%Y%m%d"),
                "PageSize": str(self._page_size),
                "CurrentPage": str(page),
            }
            answer = await self._call("QuerySendDetails", params)
            if isinstance(answer, NoAnswer):
                return LookupResult(status="unsupported", code=answer.code, detail=answer.detail)
            data = json_object(answer.body)
            if answer.status != 200 or data is None or data.get("Code") != "OK":
                code = data.get("Code") if data else None
                text = data.get("Message") if data else None
                return LookupResult(
                    status="unsupported",
                    code=str(code) if code else str(answer.status),
                    detail="QuerySendDetails failed"
                    + (f": {short(text)}" if isinstance(text, str) else ""),
                )
            dtos = data.get("SmsSendDetailDTOs")
            items = dtos.get("SmsSendDetailDTO") if isinstance(dtos, dict) else None
            if items is None:
                items = []
            if not isinstance(items, list):
                return LookupResult(status="unsupported", detail="unexpected QuerySendDetails")
            records.extend(i for i in items if isinstance(i, dict))
            total = _count(data.get("TotalCount"))
            if total is None:
                return LookupResult(status="unsupported", detail="no TotalCount in the answer")
            if len(items) < self._page_size or page * self._page_size >= total:
                return records
        return LookupResult(status="unsupported", detail="listing not complete (page bound)")


def _outcome(
    kind: tuple[Kind, str], code: str, detail: str | None, wait: float | None
) -> SendOutcome:
    what, why = kind
    text = detail or why
    if what == "retry":
        return SendOutcome(status="retry", code=code, detail=text, retry_after_s=wait)
    if what == "ambiguous":
        return SendOutcome(status="ambiguous", code=code, detail=text)
    if what == "config":
        return SendOutcome(
            status="failed", code=code, detail=f"configuration: {why}: {text}", config_error=True
        )
    return SendOutcome(
        status="failed",
        code=code,
        detail=text,
        opted_out=what == "opted_out",
        invalid_number=what == "invalid_number",
    )


def _find(records: list[dict[str, Any]], message_id: str) -> LookupResult | None:
    ours = [r for r in records if r.get("OutId") == message_id]
    if not ours:
        return None
    # OutId is ours and unique per message: several records mean it was sent more than once,
    # and the provider has it either way. The latest says how far it got.
    record = max(ours, key=lambda r: str(r.get("SendDate") or ""))
    status = _count(record.get("SendStatus"))
    err = record.get("ErrCode")
    code = str(err) if err else None
    state: ReceiptState | None = None
    if status == 3:
        state = "delivered"
    elif status == 2:
        state = "failed" if code and code.startswith(("isv.", "isp.")) else "undelivered"
    elif status == 1:
        state = "sent"
    detail = f"{len(ours)} records with this OutId" if len(ours) > 1 else None
    return LookupResult(status="found", state=state, code=code, detail=detail)


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _china_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), _TIME_FORMAT).replace(tzinfo=CHINA_TZ)
    except ValueError:
        return None


def aliyun_phone(phone: str) -> str:
    """E.164 to Aliyun's PhoneNumbers: mainland numbers without +86, others as country code +
    number without the ``+`` (SendSms doc)."""
    digits = phone.lstrip("+")
    if phone.startswith("+86") and len(digits) == 13:
        return digits[2:]
    return digits


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding (only A-Z a-z 0-9 - _ . ~ unescaped), as V3 requires."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


def authorization(
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    access_key_id: str,
    access_key_secret: str,
) -> str:
    """The ACS3-HMAC-SHA256 ``Authorization`` header over ``headers`` (all of them signed)."""
    # Names lower-cased, values trimmed at both ends (V3 canonical headers).
    signed = {k.lower(): v.strip() for k, v in headers.items()}
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    signed_names = ";".join(names)
    canonical_request = "\n".join(
        [method, path, canonical_query(query), canonical_headers, signed_names, payload_sha256]
    )
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    signature = hmac.new(access_key_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_names},Signature={signature}"
    )


# --- SmsReport (delivery receipts) ---------------------------------------------------------------


def parse_reports(body: bytes) -> list[Receipt]:
    """Every receipt of an SmsReport push (a JSON array; one object is accepted too), or
    WebhookError(400). One bad item rejects the push: Aliyun retries it whole."""
    return [_report(item, f"item {i}") for i, item in enumerate(load_json_objects(body))]


def _report(item: dict[str, Any], where: str) -> Receipt:
    success = _success(item.get("success"), field_name(where, "success"))
    out_id = (optional_str(item, "out_id", where, numbers=True) or "").strip()
    biz_id = (optional_str(item, "biz_id", where, numbers=True) or "").strip()
    if not out_id and not biz_id:
        raise WebhookError(400, f"{where}: neither out_id nor biz_id is given")
    if len(out_id) > 256 or len(biz_id) > 256:
        raise WebhookError(400, f"{where}: out_id or biz_id is too long")
    code = (optional_str(item, "err_code", where, numbers=True) or "").strip() or None
    text = optional_str(item, "err_msg", where)
    raw_time = optional_str(item, "report_time", where)
    at = None
    if raw_time and raw_time.strip():
        at = _china_time(raw_time)
        if at is None:
            raise WebhookError(
                400,
                f"{field_name(where, 'report_time')}: {raw_time[:40]!r} is not yyyy-MM-dd HH:mm:ss",
            )
    state: ReceiptState
    if success:
        state = "delivered"
    elif code and code.startswith(("isv.", "isp.")):
        state = "failed"  # refused by the platform before it reached a carrier
    else:
        state = "undelivered"
    return Receipt(
        carrier="aliyun",
        message_id=out_id or None,
        provider_id=biz_id or None,
        state=state,
        code=code,
        detail=short(text) if text else None,
        at=at,
        phone=_phone(item.get("phone_number")),
    )


def _success(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value is None:
        raise WebhookError(400, f"{name} is missing")
    if isinstance(value, int | Decimal):
        raise WebhookError(400, f"{name} must be true or false, not {value}")
    raise WebhookError(400, f"{name} must be true or false, not {json_type(value)}")


def _phone(value: object) -> str | None:
    """E.164 when the number is usable; the docs' samples mask it (1381111****), and the
    receipt correlates by id anyway, so an unusable number is no reason to refuse it."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_phone(value, "phone_number", "86")
    except WebhookError:
        return None

"""Tencent Cloud SMS (API 2021-01-11): send, reconcile, and the status callback.

API docs used:

* SendSms (2021-01-11) — JSON body ``PhoneNumberSet`` (E.164), ``SmsSdkAppId``, ``SignName``,
  ``TemplateId``, ``TemplateParamSet`` (positional ``{1}``, ``{2}``…), ``SessionContext``
  (echoed back; < 512 bytes). Answers ``{"Response": {"SendStatusSet": [{"SerialNo", "Code":
  "Ok", …}], "RequestId"}}``; request-level failures as ``{"Response": {"Error": {"Code",
  "Message"}}}`` (HTTP 200 either way). The per-number ``Code`` uses the same error codes.
* Signature method v3 (TC3-HMAC-SHA256) — headers ``Authorization``, ``X-TC-Action``,
  ``X-TC-Version``, ``X-TC-Timestamp``, ``X-TC-Region``; signed headers ``content-type;host``
  as the official SDK signs them.
* PullSmsSendStatusByPhoneNumber (2021-01-11) — the delivery *receipts* of one number between
  ``BeginTime`` and ``EndTime`` (Unix seconds), ``Offset``/``Limit`` (≤ 100), each with
  ``SerialNo``, ``ReportStatus`` (SUCCESS/FAIL), ``SessionContext``. Not PullSmsSendStatus:
  that one is a queue (each status can be pulled once), so reading it would steal receipts.
* 短信下发状态通知 (status callback) — a JSON array (≤ 100) of ``sid`` (= SerialNo),
  ``report_status`` (SUCCESS/FAIL), ``errmsg``, ``description``, ``user_receive_time``
  (yyyy-MM-dd HH:mm:ss, Beijing time), ``mobile``, ``nationcode``, optional ``ext``
  (= SessionContext, on when Tencent support enables it).
* Error codes (SMS API 3.0 错误码, and the SDK's ``sms/v20210111/errorcodes.py``) — :data:`CODES`.

What :meth:`TencentCarrier.lookup` can prove: the pull API lists receipts, not submissions. A
receipt whose ``SessionContext`` is our id proves Tencent had the message (``found``); the
absence of one proves nothing (the receipt may come later, or ``SessionContext`` echoing may
not be enabled on the account), so the answer is never ``absent`` — only found or unsupported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Literal

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
    load_json_objects,
    optional_str,
    parse_phone,
    required_str,
)

log = logging.getLogger(__name__)

API_VERSION: Final = "2021-01-11"
SERVICE: Final = "sms"
ALGORITHM: Final = "TC3-HMAC-SHA256"
CONTENT_TYPE: Final = "application/json"  # exactly what the SDK signs
CHINA_TZ: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

Kind = Literal["retry", "ambiguous", "opted_out", "invalid_number", "config", "failed"]

# Error codes → what they mean for us. Unlisted: ``InternalError*`` is ambiguous (Tencent's
# side failed, possibly after submitting), ``LimitExceeded*`` a frequency limit (retry),
# anything else a permanent failure of this message.
CODES: Final[dict[str, tuple[Kind, str]]] = {
    "RequestLimitExceeded": ("retry", "API request rate limit"),
    "LimitExceeded.PhoneNumberThirtySecondLimit": ("retry", "per-number limit in 30 s"),
    "LimitExceeded.PhoneNumberOneHourLimit": ("retry", "per-number limit in 1 h"),
    "LimitExceeded.PhoneNumberDailyLimit": ("retry", "per-number daily limit"),
    "LimitExceeded.PhoneNumberSameContentDailyLimit": ("retry", "same content to a number"),
    "LimitExceeded.DeliveryFrequencyLimit": ("retry", "frequency-limit policy hit"),
    "LimitExceeded.DailyLimit": ("retry", "international daily limit"),
    "LimitExceeded.AppDailyLimit": ("retry", "the app's daily limit"),
    "LimitExceeded.AppMainlandChinaDailyLimit": ("retry", "the app's mainland daily limit"),
    "LimitExceeded.AppGlobalDailyLimit": ("retry", "the app's international daily limit"),
    "LimitExceeded.AppCountryOrRegionDailyLimit": ("retry", "per-country daily limit"),
    "LimitExceeded.GlobalSmsSendingRateLimit": ("retry", "international sending rate limit"),
    "LimitExceeded.PhoneNumberCountLimit": ("failed", "more than 200 numbers in one request"),
    "LimitExceeded.AppCountryOrRegionInBlacklist": ("config", "the country is blocked in the app"),
    "InternalError.Timeout": ("ambiguous", "Tencent timed out talking to its SMS backend"),
    "InternalError.SendAndRecvFail": ("ambiguous", "Tencent backend send/receive failed"),
    "InternalError.ParseBackendResponseFail": ("ambiguous", "Tencent could not read its backend"),
    "InternalError.RequestTimeException": ("config", "request time off by > 10 min: check clock"),
    "InternalError.SigVerificationFail": ("config", "backend signature check failed"),
    "InternalError.SigFieldMissing": ("config", "signature missing"),
    "FailedOperation.PhoneNumberInBlacklist": ("opted_out", "unsubscribed / do-not-disturb list"),
    "InvalidParameterValue.IncorrectPhoneNumber": ("invalid_number", "malformed phone number"),
    "FailedOperation.PhoneNumberParseFail": ("invalid_number", "number is not E.164"),
    "AuthFailure.SignatureFailure": ("config", "signature rejected: check SecretKey"),
    "AuthFailure.SignatureExpire": ("config", "signature expired: check the clock"),
    "AuthFailure.SecretIdNotFound": ("config", "unknown SecretId"),
    "AuthFailure.InvalidSecretId": ("config", "invalid SecretId"),
    "AuthFailure.UnauthorizedOperation": ("config", "CAM: not authorised"),
    "AuthFailure.InvalidAuthorization": ("config", "malformed Authorization header"),
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": ("config", "SmsSdkAppId not of this account"),
    "UnauthorizedOperation.SdkAppIdIsDisabled": ("config", "the SDK app is disabled"),
    "UnauthorizedOperation.ServiceSuspendDueToArrears": ("config", "suspended for arrears"),
    "UnauthorizedOperation.RequestIpNotInWhitelist": ("config", "our IP is not whitelisted"),
    "UnauthorizedOperation.RequestPermissionDeny": ("config", "no permission"),
    "UnauthorizedOperation.IndividualUserMarketingSmsPermissionDeny": (
        "config",
        "individual accounts may not send marketing SMS",
    ),
    "InvalidParameterValue.SdkAppIdNotExist": ("config", "unknown SmsSdkAppId"),
    "FailedOperation.TemplateIncorrectOrUnapproved": ("config", "template unknown/unapproved"),
    "FailedOperation.TemplateUnapprovedOrNotExist": ("config", "template unknown/unapproved"),
    "FailedOperation.TemplateIdNotExist": ("config", "unknown TemplateId"),
    "FailedOperation.SignatureIncorrectOrUnapproved": ("config", "sign name unknown/unapproved"),
    "FailedOperation.MissingSignature": ("config", "no approved sign name"),
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": (
        "config",
        "TemplateParamSet does not fit the approved template",
    ),
    "FailedOperation.InsufficientBalanceInSmsPackage": ("config", "SMS package exhausted"),
    "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone": (
        "config",
        "a mainland template for an international number",
    ),
    "UnsupportedOperation.GlobalTemplateToChineseMainlandPhone": (
        "config",
        "an international template for a mainland number",
    ),
    "FailedOperation.ContainSensitiveWord": ("failed", "the content holds a sensitive word"),
    "FailedOperation.MarketingSendTimeConstraint": ("retry", "marketing SMS only 08:00–22:00"),
    "InvalidParameterValue.TemplateParameterFormatError": ("failed", "bad template parameter"),
    "InvalidParameterValue.TemplateParameterLengthLimit": ("failed", "template parameter long"),
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": ("failed", "URL in a variable"),
    "InvalidParameterValue.ContentLengthLimit": ("failed", "content too long"),
    "UnsupportedOperation.UnsupportedRegion": ("failed", "SMS to this region is not supported"),
    "FailedOperation.JsonParseFail": ("failed", "Tencent could not parse our request"),
}
OPT_OUT_CODES: Final = frozenset(c for c, (k, _) in CODES.items() if k == "opted_out")
INVALID_NUMBER_CODES: Final = frozenset(c for c, (k, _) in CODES.items() if k == "invalid_number")


def _kind(code: str) -> tuple[Kind, str] | None:
    if code in CODES:
        return CODES[code]
    if code.startswith("RequestLimitExceeded"):
        return ("retry", "API request rate limit")
    if code.startswith("LimitExceeded."):
        return ("retry", "a frequency limit")
    if code.startswith("InternalError"):
        return ("ambiguous", "Tencent internal error: it may have sent the message")
    if code.startswith("AuthFailure"):
        return ("config", "authentication failed")
    return None


class TencentCarrier(Carrier):
    name: CarrierName = "tencent"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        endpoint: str = "https://sms.tencentcloudapi.com",
        region: str = "ap-guangzhou",
        timeout_s: float = 10.0,
        now: Callable[[], datetime] | None = None,
        lookup_pages: int = 5,
    ) -> None:
        self._session = session
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._app = sdk_app_id
        self._sign = sign_name
        self._url = URL(endpoint.rstrip("/") + "/")
        self._region = region
        self._timeout_s = timeout_s
        self._now = now or utc_now
        self._pages = lookup_pages

    def __repr__(self) -> str:  # never the key
        return f"TencentCarrier(secret_id={self._secret_id!r}, endpoint={str(self._url)!r})"

    def check(self, message: CarrierMessage) -> str | None:
        if not message.codes.get("tencent"):
            return f"template {message.template!r} has no Tencent template id (codes.tencent)"
        if len(message.id.encode()) >= 512:
            return "message id too long for SessionContext (< 512 bytes)"
        return None

    def send_payload(self, message: CarrierMessage) -> dict[str, Any]:
        """The SendSms request body for ``message`` (``check`` must have passed)."""
        return {
            "PhoneNumberSet": [message.phone],
            "SmsSdkAppId": self._app,
            "SignName": self._sign,
            "TemplateId": message.codes["tencent"],
            # Positional {1}, {2}…: CarrierMessage.params keeps the template's order.
            "TemplateParamSet": list(message.params.values()),
            "SessionContext": message.id,
        }

    def signed(self, action: str, payload: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a signed call of ``action``."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(aware(self._now()).timestamp())
        host = host_header(self._url)
        headers = {
            "Host": host,
            "Content-Type": CONTENT_TYPE,
            "X-TC-Action": action,
            "X-TC-Version": API_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self._region,
        }
        headers["Authorization"] = authorization(
            secret_id=self._secret_id,
            secret_key=self._secret_key,
            timestamp=timestamp,
            host=host,
            content_type=CONTENT_TYPE,
            payload=body,
        )
        return body, headers

    async def _call(self, action: str, payload: Mapping[str, Any]) -> Answer | NoAnswer:
        body, headers = self.signed(action, payload)
        return await exchange(
            self._session, "POST", self._url, headers=headers, data=body, timeout_s=self._timeout_s
        )

    async def send(self, message: CarrierMessage) -> SendOutcome:
        reason = self.check(message)
        if reason:
            return SendOutcome(status="failed", code="NO_TEMPLATE_ID", detail=reason)
        answer = await self._call("SendSms", self.send_payload(message))
        outcome = answer.outcome() if isinstance(answer, NoAnswer) else self._classify(answer)
        if outcome.status != "sent":
            log.info(
                "tencent send %s to %s: %s %s",
                message.id,
                mask_phone(message.phone),
                outcome.status,
                outcome.code,
            )
        return outcome

    def _classify(self, answer: Answer) -> SendOutcome:
        wait = retry_after_s(answer.headers.get("Retry-After"), self._now)
        data = json_object(answer.body)
        response = data.get("Response") if data else None
        if not isinstance(response, dict):
            if answer.status == 429:
                return SendOutcome(status="retry", code="429", retry_after_s=wait)
            if 200 <= answer.status < 300 or answer.status >= 500:
                return SendOutcome(
                    status="ambiguous",
                    code=str(answer.status),
                    detail="unparsable answer" if answer.status < 300 else None,
                )
            return SendOutcome(
                status="failed",
                code=str(answer.status),
                detail=f"HTTP {answer.status}"
                + (" (configuration: credentials or URL)" if answer.status in (401, 403) else ""),
                config_error=answer.status in (401, 403),
            )
        error = response.get("Error")
        if isinstance(error, dict):
            return _from_code(error.get("Code"), error.get("Message"), None, wait)
        statuses = response.get("SendStatusSet")
        first = statuses[0] if isinstance(statuses, list) and statuses else None
        if not isinstance(first, dict):
            return SendOutcome(
                status="ambiguous", code=str(answer.status), detail="no SendStatusSet in answer"
            )
        serial = first.get("SerialNo")
        provider_id = str(serial) if serial else None
        if first.get("Code") == "Ok":
            return SendOutcome(status="sent", provider_id=provider_id)
        return _from_code(first.get("Code"), first.get("Message"), provider_id, wait)

    async def lookup(self, message: CarrierMessage, sent_after: datetime) -> LookupResult:
        since = aware(sent_after)
        begin = int(since.timestamp()) - 60  # receipts are stamped by Tencent's clock
        end = int(aware(self._now()).timestamp()) + 60
        echoed = False
        limit = 100
        for page in range(self._pages):
            answer = await self._call(
                "PullSmsSendStatusByPhoneNumber",
                {
                    "BeginTime": begin,
                    "EndTime": end,
                    "Offset": page * limit,
                    "Limit": limit,
                    "PhoneNumber": message.phone,
                    "SmsSdkAppId": self._app,
                },
            )
            if isinstance(answer, NoAnswer):
                return LookupResult(status="unsupported", code=answer.code, detail=answer.detail)
            data = json_object(answer.body)
            response = data.get("Response") if data else None
            if answer.status != 200 or not isinstance(response, dict):
                return LookupResult(
                    status="unsupported", code=str(answer.status), detail="status pull failed"
                )
            error = response.get("Error")
            if isinstance(error, dict):
                text = error.get("Message")
                return LookupResult(
                    status="unsupported",
                    code=str(error.get("Code")),
                    detail=short(text) if isinstance(text, str) else "status pull failed",
                )
            items = response.get("PullSmsSendStatusSet")
            if not isinstance(items, list):
                items = []
            for item in items:
                if not isinstance(item, dict):
                    continue
                context = item.get("SessionContext")
                echoed = echoed or bool(context)
                if context == message.id:
                    serial = item.get("SerialNo")
                    report = item.get("ReportStatus")
                    state: ReceiptState | None = (
                        "delivered"
                        if report == "SUCCESS"
                        else "undelivered"
                        if report == "FAIL"
                        else None
                    )
                    description = item.get("Description")
                    return LookupResult(
                        status="found",
                        provider_id=str(serial) if serial else None,
                        state=state,
                        detail=short(description) if isinstance(description, str) else None,
                    )
            if len(items) < limit:
                break
        why = (
            "no receipt with this SessionContext yet"
            if echoed
            else "no receipt echoes SessionContext (may need enabling by Tencent support)"
        )
        return LookupResult(status="unsupported", detail=f"{why}; receipts cannot prove absence")


def _from_code(
    code: object, message: object, provider_id: str | None, wait: float | None
) -> SendOutcome:
    code_text = str(code) if code else "UNKNOWN"
    text = short(message) if isinstance(message, str) and message else None
    kind = _kind(code_text)
    what, why = kind if kind else ("failed", "")
    detail = text or why or None
    if what == "retry":
        return SendOutcome(
            status="retry", code=code_text, detail=detail, retry_after_s=wait, provider_id=None
        )
    if what == "ambiguous":
        return SendOutcome(status="ambiguous", code=code_text, detail=detail, provider_id=None)
    if what == "config":
        return SendOutcome(
            status="failed",
            code=code_text,
            detail=f"configuration: {why}: {text or ''}".rstrip(),
            config_error=True,
        )
    return SendOutcome(
        status="failed",
        code=code_text,
        detail=detail,
        provider_id=provider_id,
        opted_out=what == "opted_out",
        invalid_number=what == "invalid_number",
    )


def authorization(
    *,
    secret_id: str,
    secret_key: str,
    timestamp: int,
    host: str,
    content_type: str,
    payload: bytes,
    method: str = "POST",
    service: str = SERVICE,
) -> str:
    """The TC3-HMAC-SHA256 ``Authorization`` header (signed headers ``content-type;host``)."""
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical_request = "\n".join(
        [
            method,
            "/",
            "",  # no query string on a POST
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    scope = f"{day}/{service}/tc3_request"
    to_sign = "\n".join(
        [ALGORITHM, str(timestamp), scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = ("TC3" + secret_key).encode()
    for part in (day, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


# --- Status callback (delivery receipts) ---------------------------------------------------------


def parse_reports(body: bytes) -> list[Receipt]:
    """Every receipt of a status callback (a JSON array, up to 100; one object is accepted
    too), or WebhookError(400). One bad item rejects the push: Tencent retries it whole."""
    return [_report(item, f"item {i}") for i, item in enumerate(load_json_objects(body))]


def _report(item: dict[str, Any], where: str) -> Receipt:
    sid = required_str(item, "sid", where, numbers=True).strip()
    if not sid or len(sid) > 128:
        raise WebhookError(400, f"{field_name(where, 'sid')} is empty or too long")
    raw_status = required_str(item, "report_status", where).strip()
    state: ReceiptState
    if raw_status.upper() == "SUCCESS":
        state = "delivered"
    elif raw_status.upper() == "FAIL":
        state = "undelivered"
    else:
        raise WebhookError(
            400, f"{field_name(where, 'report_status')}: {raw_status[:40]!r} is not SUCCESS/FAIL"
        )
    ext = (optional_str(item, "ext", where, numbers=True) or "").strip()
    if len(ext) > 512:
        raise WebhookError(400, f"{field_name(where, 'ext')} is longer than SessionContext can be")
    code = (optional_str(item, "errmsg", where, numbers=True) or "").strip() or None
    description = optional_str(item, "description", where)
    raw_time = optional_str(item, "user_receive_time", where)
    at = None
    if raw_time and raw_time.strip():
        try:
            at = datetime.strptime(raw_time.strip(), _TIME_FORMAT).replace(tzinfo=CHINA_TZ)
        except ValueError:
            raise WebhookError(
                400,
                f"{field_name(where, 'user_receive_time')}: {raw_time[:40]!r} is not "
                "yyyy-MM-dd HH:mm:ss",
            ) from None
    return Receipt(
        carrier="tencent",
        message_id=ext or None,
        provider_id=sid,
        state=state,
        code=code,
        detail=short(description) if description else None,
        at=at,
        phone=_phone(item.get("mobile"), item.get("nationcode")),
    )


def _phone(mobile: object, nationcode: object) -> str | None:
    """E.164 when usable; the receipt correlates by sid, so a bad number is not fatal."""
    if isinstance(mobile, int) and not isinstance(mobile, bool):
        mobile = str(mobile)
    if isinstance(nationcode, int) and not isinstance(nationcode, bool):
        nationcode = str(nationcode)
    if not isinstance(mobile, str) or not mobile.strip():
        return None
    code = nationcode.strip().lstrip("+") if isinstance(nationcode, str) else ""
    if not code.isdigit() or not 1 <= len(code) <= 4:
        code = "86"
    try:
        return parse_phone(mobile, "mobile", code)
    except WebhookError:
        return None

"""Twilio Programmable Messaging: send, reconcile, and the status callback form.

API docs used (Twilio REST API 2010-04-01, "Message resource"):

* Create a Message — ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP Basic
  auth (Account SID : Auth Token), form fields ``To``, ``From`` or ``MessagingServiceSid``,
  ``Body``, ``StatusCallback``; answers ``201`` with the Message (``sid``, ``status``) or an
  error object ``{"code", "message", "more_info", "status"}``.
* Read multiple Message resources — ``GET …/Messages.json?To=…&DateSent>=YYYY-MM-DD``
  (the ``>`` belongs to the parameter name: the query is ``DateSent%3E=2024-01-31``), paged by
  ``next_page_uri``; the date has day granularity, in GMT.
* "Outbound Message Status in Status Callbacks" — the callback form ``MessageSid``,
  ``MessageStatus``, ``ErrorCode``, ``To``; no timestamp, and they can arrive out of order.
* Error and Warning Dictionary — the codes in :data:`CODES`.

Our message id travels as ``ref=<id>`` in the StatusCallback URL's query (Twilio has no
client-reference field); Twilio signs callbacks over the full URL, query included, so the ref
is covered by ``X-Twilio-Signature`` (checked in ``bot/transport/twilio.py``, not here).

What :meth:`TwilioCarrier.lookup` can prove, and what it cannot:

* A Message does not carry our id (the StatusCallback URL is not returned), so a match is by
  recipient + exact body + ``date_created >= sent_after``. Exactly one match is ``found``.
* Several matches cannot be told apart: ``unsupported``.
* ``absent`` needs the listing to be complete *and* settled. ``DateSent`` is null while a
  message waits in Twilio's queue (up to ``ValidityPeriod``, default and maximum 36000 s), so a
  queued message is invisible to a ``DateSent`` filter; and the list is eventually consistent
  (recently sent messages missing for 10–15 minutes: twilio-java#442, twilio-node#647). So
  ``absent`` is only answered once ``sent_after`` is older than the validity period plus a
  listing-lag margin (before that: ``unsupported`` with code ``TOO_RECENT``, so a caller can
  ask again later instead of giving up); pass ``validity_period_s`` to bound the queue time
  (it is then sent as ``ValidityPeriod``) and so get a definite answer sooner.
* Message bodies that Twilio stored differently (Message Redaction empties them; Smart
  Encoding on a Messaging Service rewrites some Unicode punctuation) cannot be compared. An
  empty body in the window makes the answer ``unsupported``; a rewritten one is not detectable,
  so do not enable Smart Encoding on the service used here if ``absent`` is relied on.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from bot.outbound.carriers._http import (
    Answer,
    NoAnswer,
    aware,
    exchange,
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
from bot.transport.inbound import WebhookError, parse_phone

log = logging.getLogger(__name__)

API_VERSION: Final = "2010-04-01"

Kind = Literal["retry", "opted_out", "invalid_number", "config", "failed"]

# Twilio error codes (Error and Warning Dictionary) → what they mean for us. Codes not listed
# are permanent failures of this message when answered with a 4xx, ambiguous with a 5xx.
CODES: Final[dict[int, tuple[Kind, str]]] = {
    20429: ("retry", "Too Many Requests: the API rate limit; nothing was queued"),
    14107: ("retry", "trial/account send rate limit exceeded; nothing was queued"),
    21611: ("retry", "this sender's queue is full (queue overflow); nothing was queued"),
    63018: ("retry", "rate limit exceeded for the channel/sender"),
    21610: ("opted_out", "the recipient replied STOP: Twilio refuses to message them"),
    21211: ("invalid_number", "invalid 'To' phone number"),
    21214: ("invalid_number", "'To' phone number cannot be reached"),
    21217: ("invalid_number", "phone number does not appear to be valid"),
    21401: ("invalid_number", "invalid phone number"),
    21407: ("invalid_number", "this phone number type does not support SMS"),
    21612: ("invalid_number", "'To' number is not currently reachable via SMS"),
    21614: ("invalid_number", "'To' number is not a valid mobile number (landline?)"),
    30005: ("invalid_number", "unknown destination handset (delivery error)"),
    30006: ("invalid_number", "landline or unreachable carrier (delivery error)"),
    20003: ("config", "authentication failed: check the Account SID and Auth Token"),
    20404: ("config", "resource not found: check the Account SID / API URL"),
    20005: ("config", "the account is not active"),
    21212: ("config", "invalid 'From' number"),
    21606: ("config", "'From' is not a message-capable Twilio number of this account"),
    21659: ("config", "'From' is not a Twilio number or approved sender id"),
    21408: ("config", "SMS to this region is not enabled (geo permissions)"),
    21608: ("config", "trial account: the 'To' number is not verified"),
    21703: ("config", "the Messaging Service is invalid or inaccessible"),
    21704: ("config", "the Messaging Service has no phone numbers"),
    21705: ("config", "the Messaging Service is invalid"),
    21602: ("failed", "message body is required"),
    21617: ("failed", "body exceeds the 1600 character limit"),
    21619: ("failed", "a text body or media URL is required"),
    30007: ("failed", "filtered by the carrier as spam (delivery error)"),
}
OPT_OUT_CODES: Final = frozenset(str(c) for c, (k, _) in CODES.items() if k == "opted_out")
INVALID_NUMBER_CODES: Final = frozenset(
    str(c) for c, (k, _) in CODES.items() if k == "invalid_number"
)

# MessageStatus → our receipt state. ``scheduled`` and ``partially_delivered`` claim neither
# delivery nor failure of the message, so they stay "sent" (never overwriting a terminal one).
STATUS_STATES: Final[dict[str, ReceiptState]] = {
    "queued": "sent",
    "accepted": "sent",
    "scheduled": "sent",
    "sending": "sent",
    "sent": "sent",
    "partially_delivered": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}

# Listing-lag margin on top of the queue time before a missing message counts as absent.
LIST_LAG_S: Final = 900.0
DEFAULT_VALIDITY_S: Final = 36_000
MAX_BODY_CHARS: Final = 1600
# LookupResult.code when absence is not provable *yet*: asking again later may answer it.
TOO_RECENT: Final = "TOO_RECENT"
_MAX_ID: Final = 64


class TwilioCarrier(Carrier):
    name: CarrierName = "twilio"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str = "https://api.twilio.com",
        status_callback: str | None = None,
        timeout_s: float = 10.0,
        validity_period_s: int | None = None,
        now: Callable[[], datetime] | None = None,
        lookup_pages: int = 5,
        page_size: int = 100,
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ValueError("Twilio needs from_number or messaging_service_sid")
        if validity_period_s is not None and not 1 <= validity_period_s <= DEFAULT_VALIDITY_S:
            raise ValueError("validity_period_s must be within 1..36000 (Twilio's range)")
        self._session = session
        self._sid = account_sid
        self._auth = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._from = from_number
        self._service = messaging_service_sid
        self._base = URL(base_url.rstrip("/"))
        self._callback = status_callback
        self._timeout_s = timeout_s
        self._validity_s = validity_period_s
        self._now = now or utc_now
        self._pages = lookup_pages
        self._page_size = page_size

    def __repr__(self) -> str:  # never the token
        return f"TwilioCarrier(account_sid={self._sid!r}, base_url={str(self._base)!r})"

    def check(self, message: CarrierMessage) -> str | None:
        # Twilio sends free text: no template code is needed, only a body it accepts.
        if not message.text.strip():
            return "empty message text (Twilio 21602)"
        if len(message.text) > MAX_BODY_CHARS:
            return f"text longer than Twilio's {MAX_BODY_CHARS} characters (21617)"
        return None

    @property
    def _messages_url(self) -> URL:
        return self._base / API_VERSION / "Accounts" / self._sid / "Messages.json"

    def form(self, message: CarrierMessage) -> list[tuple[str, str]]:
        """The create-Message form for ``message``."""
        fields = [("To", message.phone)]
        if self._service:
            fields.append(("MessagingServiceSid", self._service))
        if self._from:
            fields.append(("From", self._from))
        fields.append(("Body", message.text))
        if self._callback:
            fields.append(("StatusCallback", callback_url(self._callback, message.id)))
        if self._validity_s is not None:
            fields.append(("ValidityPeriod", str(self._validity_s)))
        return fields

    async def send(self, message: CarrierMessage) -> SendOutcome:
        reason = self.check(message)
        if reason:
            return SendOutcome(status="failed", code="BAD_TEXT", detail=reason)
        answer = await exchange(
            self._session,
            "POST",
            self._messages_url,
            headers={"Authorization": self._auth, "Accept": "application/json"},
            data=self.form(message),
            timeout_s=self._timeout_s,
        )
        outcome = answer.outcome() if isinstance(answer, NoAnswer) else self._classify(answer)
        if outcome.status != "sent":
            log.info(
                "twilio send %s to %s: %s %s",
                message.id,
                mask_phone(message.phone),
                outcome.status,
                outcome.code,
            )
        return outcome

    def _classify(self, answer: Answer) -> SendOutcome:
        data = json_object(answer.body)
        if 200 <= answer.status < 300:
            sid = data.get("sid") if data else None
            if data is None or not isinstance(sid, str) or not sid:
                # Twilio answered success but we cannot read it: it may well have the message.
                return SendOutcome(
                    status="ambiguous",
                    code=str(answer.status),
                    detail="unparsable success answer",
                )
            status = data.get("status")
            if status in ("failed", "undelivered", "canceled"):
                return _from_code(data.get("error_code"), data.get("error_message"), sid)
            return SendOutcome(status="sent", provider_id=sid)
        code = data.get("code") if data else None
        text = data.get("message") if data else None
        detail = short(text) if isinstance(text, str) else None
        if answer.status == 429:
            return SendOutcome(
                status="retry",
                code=str(code if isinstance(code, int) else 429),
                detail=detail or "Too Many Requests",
                retry_after_s=retry_after_s(answer.headers.get("Retry-After"), self._now),
            )
        if answer.status >= 500:
            return SendOutcome(
                status="ambiguous",
                code=str(code if isinstance(code, int) else answer.status),
                detail=detail or f"HTTP {answer.status}",
            )
        if isinstance(code, int) and code in CODES:
            outcome = _from_code(code, text, None)
            if outcome.status == "retry":
                wait = retry_after_s(answer.headers.get("Retry-After"), self._now)
                outcome = outcome.model_copy(update={"retry_after_s": wait})
            return outcome
        if answer.status in (401, 403):
            return SendOutcome(
                status="failed",
                code=str(code if isinstance(code, int) else answer.status),
                detail=f"credentials rejected (HTTP {answer.status}): {detail or ''}".rstrip()
                + " (configuration: check SMSBOT_TWILIO_ACCOUNT_SID and SMSBOT_TWILIO_AUTH_TOKEN)",
                config_error=True,
            )
        if answer.status == 404:
            return SendOutcome(
                status="failed",
                code=str(code if isinstance(code, int) else 404),
                detail="not found: check the Account SID and the API URL (configuration)",
                config_error=True,
            )
        return SendOutcome(
            status="failed",
            code=str(code if isinstance(code, int) else answer.status),
            detail=detail or f"HTTP {answer.status}",
        )

    async def lookup(self, message: CarrierMessage, sent_after: datetime) -> LookupResult:
        since = aware(sent_after).replace(microsecond=0)
        params: dict[str, str] = {"To": message.phone}
        if self._from and not self._service:
            params["From"] = self._from
        # The '>' is part of the parameter name: Twilio reads ``DateSent>=YYYY-MM-DD``.
        params["DateSent>"] = since.astimezone(UTC).strftime("%Y-%m-%d")
        params["PageSize"] = str(self._page_size)
        url = self._messages_url.with_query(params)
        listed: list[dict[str, Any]] = []
        complete = False
        for _ in range(self._pages):
            answer = await exchange(
                self._session,
                "GET",
                url,
                headers={"Authorization": self._auth, "Accept": "application/json"},
                data=None,
                timeout_s=self._timeout_s,
            )
            if isinstance(answer, NoAnswer):
                return LookupResult(status="unsupported", code=answer.code, detail=answer.detail)
            data = json_object(answer.body)
            if answer.status != 200 or data is None or not isinstance(data.get("messages"), list):
                return LookupResult(
                    status="unsupported",
                    code=str(answer.status),
                    detail="message list failed: " + _error_text(data, answer.status),
                )
            listed.extend(m for m in data["messages"] if isinstance(m, dict))
            next_uri = data.get("next_page_uri")
            if not next_uri:
                complete = True
                break
            if not isinstance(next_uri, str) or not next_uri.startswith("/"):
                return LookupResult(status="unsupported", detail="unexpected next_page_uri")
            # Relative to the API root (Twilio's paging contract), so a base_url with a path
            # prefix would lose it here; the default and the fake have none.
            url = self._base.join(URL(next_uri))
        return self._match(message, since, listed, complete)

    def _match(
        self,
        message: CarrierMessage,
        since: datetime,
        listed: list[dict[str, Any]],
        complete: bool,
    ) -> LookupResult:
        matches: list[dict[str, Any]] = []
        unreadable = 0
        for item in listed:
            if item.get("to") != message.phone:
                continue
            direction = item.get("direction")
            if isinstance(direction, str) and not direction.startswith("outbound"):
                continue
            created = _rfc2822(item.get("date_created"))
            if created is None or created < since:
                continue
            body = item.get("body")
            if not isinstance(body, str) or not body:
                unreadable += 1  # redacted: could be ours
            elif body == message.text:
                matches.append(item)
        if len(matches) == 1:
            found = matches[0]
            status = found.get("status")
            code = found.get("error_code")
            return LookupResult(
                status="found",
                provider_id=str(found.get("sid")) if found.get("sid") else None,
                state=STATUS_STATES.get(status) if isinstance(status, str) else None,
                code=str(code) if code is not None else None,
                detail=status if isinstance(status, str) else None,
            )
        if matches:
            return LookupResult(
                status="unsupported",
                detail=f"{len(matches)} messages with this body to this number since {since}",
            )
        if not complete:
            return LookupResult(status="unsupported", detail="listing not complete (page bound)")
        if unreadable:
            return LookupResult(
                status="unsupported",
                detail=f"{unreadable} message(s) in the window have a redacted body",
            )
        horizon = (self._validity_s or DEFAULT_VALIDITY_S) + LIST_LAG_S
        if self._now() - since < timedelta(seconds=horizon):
            return LookupResult(
                status="unsupported",
                code=TOO_RECENT,
                detail=(
                    "not listed, but it may still be queued (no DateSent yet) or not yet "
                    f"listed: absence is definite only {horizon:.0f} s after sending"
                ),
            )
        return LookupResult(status="absent")


def _from_code(code: object, message: object, sid: str | None) -> SendOutcome:
    number = code if isinstance(code, int) else _int(code)
    kind, why = CODES.get(number, ("failed", "")) if number is not None else ("failed", "")
    text = short(message) if isinstance(message, str) and message else why
    code_text = str(number) if number is not None else None
    if kind == "retry":
        return SendOutcome(status="retry", code=code_text, detail=text, provider_id=sid)
    if kind == "config":
        return SendOutcome(
            status="failed",
            code=code_text,
            detail=f"configuration: {why}: {text}"
            if why and why != text
            else f"configuration: {text}",
            provider_id=sid,
            config_error=True,
        )
    return SendOutcome(
        status="failed",
        provider_id=sid,
        code=code_text,
        detail=text or None,
        opted_out=kind == "opted_out",
        invalid_number=kind == "invalid_number",
    )


def _int(value: object) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _error_text(data: dict[str, Any] | None, status: int) -> str:
    if data and isinstance(data.get("message"), str):
        return f"{data.get('code')}: {short(data['message'])}"
    return f"HTTP {status}"


def _rfc2822(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return aware(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


def callback_url(status_callback: str, message_id: str) -> str:
    """``status_callback`` with ``ref=<message_id>`` added to its query.

    The fragment is kept after the query: Twilio reads connection overrides (``#rc=3&rp=…``)
    from it, and they must not become part of the query.
    """
    parts = urlsplit(status_callback)
    ref = urlencode({"ref": message_id})
    query = f"{parts.query}&{ref}" if parts.query else ref
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def callback_ref(url: str) -> str | None:
    """Our message id from a status-callback URL (the inverse of :func:`callback_url`)."""
    values = [v for k, v in parse_qsl(urlsplit(url).query) if k == "ref"]
    return values[-1] if values else None


def parse_status_callback(params: Sequence[tuple[str, str]], query_ref: str | None) -> Receipt:
    """One status callback (the decoded form pairs) as a Receipt, or WebhookError(400).

    ``query_ref`` is the ``ref`` query parameter of the URL Twilio called (our message id),
    None when absent. The signature must have been checked before (bot/transport/twilio.py).
    """
    fields: dict[str, str] = {}
    for name, value in params:
        if name in fields and fields[name] != value:
            raise WebhookError(400, f"{name} is given twice with different values")
        fields[name] = value
    sid = fields.get("MessageSid", "").strip()
    if not sid:
        raise WebhookError(400, "MessageSid is missing")
    if len(sid) > _MAX_ID or not sid.isascii() or not sid.isalnum():
        raise WebhookError(400, "MessageSid is not a Twilio message SID")
    raw_status = fields.get("MessageStatus", "").strip()
    if not raw_status:
        raise WebhookError(400, "MessageStatus is missing")
    status = raw_status.lower()
    if status in ("receiving", "received"):
        raise WebhookError(400, f"MessageStatus {raw_status!r} is an inbound message status")
    state = STATUS_STATES.get(status)
    if state is None:
        raise WebhookError(400, f"MessageStatus {raw_status[:40]!r} is not a known status")
    ref = query_ref.strip() if query_ref is not None else ""
    if len(ref) > 200:
        raise WebhookError(400, "ref is longer than a message id can be")
    error_code = fields.get("ErrorCode", "").strip()
    if error_code and (len(error_code) > 10 or not error_code.isdigit()):
        raise WebhookError(400, f"ErrorCode {error_code[:20]!r} is not a Twilio error code")
    return Receipt(
        carrier="twilio",
        message_id=ref or None,
        provider_id=sid,
        state=state,
        code=error_code or None,
        detail=status,
        at=None,  # Twilio's callbacks carry no timestamp
        phone=_phone(fields.get("To")),
    )


def _phone(raw: str | None) -> str | None:
    """To as E.164, or None: the number is informative here, the SID is what correlates."""
    if not raw:
        return None
    try:
        return parse_phone(raw, "To", nationcode=None)
    except WebhookError:
        return None

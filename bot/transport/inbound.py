"""The one internal shape every provider's inbound SMS is normalised into."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from common.errors import SmsbotError

ProviderName = Literal["twilio", "aliyun", "tencent", "generic", "simulator"]


class InboundSms(BaseModel):
    """A borrower's message as received, before anything interprets it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: ProviderName
    # The provider's message id, or a hash of mobile + time + text where it gives none
    # (Tencent): the deduplication key for provider retries.
    msg_id: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=32)  # E.164 (+8613800138000)
    to: str | None = None  # our number or extension code, when the provider says
    text: str = Field(max_length=5000)
    sent_at: AwareDatetime | None = None  # provider's time, when it gives one
    received_at: AwareDatetime


class WebhookError(SmsbotError):
    """A webhook request we refuse; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str, **fields: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.fields = fields  # more of the refusal for a program (a 409's holder)


def e164(phone: str, nationcode: str | None = "86") -> str:
    """+8613800138000 from 13800138000, 8613800138000, +86 138-0013-8000 or 0086…."""
    digits = "".join(filter(str.isdigit, phone))
    if phone.strip().startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    code = nationcode or "86"
    if digits.startswith(code) and len(digits) > 11:
        return "+" + digits
    return f"+{code}{digits}"


def content_id(provider: str, phone: str, when: datetime | str | int | None, text: str) -> str:
    """A stable message id from what a retry repeats exactly: mobile, provider time and text."""
    h = hashlib.sha256(f"{provider}|{phone}|{when}|{text}".encode()).hexdigest()
    return f"h:{h[:32]}"


# --- Helpers shared by the provider modules (twilio, aliyun, tencent, generic, auth) -------------
#
# Every helper turns bad input into WebhookError(400/403) with a reason that names the field, so
# the web layer answers one JSON reason and never a 500 for something a provider sent.


def same_secret(expected: str, given: str) -> bool:
    """Constant-time equality of two secrets (signatures, tokens) given as text."""
    # compare_digest raises TypeError on non-ASCII str, and header values can hold anything;
    # comparing bytes keeps it constant-time and total. backslashreplace never fails.
    return hmac.compare_digest(
        expected.encode("utf-8", "backslashreplace"), given.encode("utf-8", "backslashreplace")
    )


def _reject_constant(name: str) -> Any:
    # json accepts NaN/Infinity by default; no provider sends them and they break ids and times.
    raise ValueError(f"{name} is not allowed in JSON")


def load_json(body: bytes) -> Any:
    """Parse a UTF-8 JSON request body; numbers with a fraction or exponent become ``Decimal``.

    Decimal keeps the digits exactly as sent, so an id sent as ``1.234567890E9`` (Aliyun's MNS
    Double) converts to the same integer as the string ``"1234567890"``.
    """
    try:
        # utf-8-sig: a BOM is harmless and some Windows/Java stacks emit one.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WebhookError(400, f"body is not UTF-8 (bad byte at offset {exc.start})") from None
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise WebhookError(400, f"body is not valid JSON: {exc}") from None


def load_json_objects(body: bytes) -> list[dict[str, Any]]:
    """A JSON body that is one object or an array of objects, as a list of objects.

    Aliyun documents an array, Tencent a single object (and pushes arrays elsewhere): accepting
    both costs nothing and survives either provider changing its mind.
    """
    data = load_json(body)
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise WebhookError(400, f"body must be a JSON object or array, not {json_type(data)}")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise WebhookError(400, f"item {i}: must be a JSON object, not {json_type(item)}")
    return data


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error reasons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def field_name(where: str, key: str) -> str:
    """``item 2: phone_number`` inside an array, plain ``phone_number`` in a single object."""
    return f"{where}: {key}" if where else key


def optional_str(
    obj: Mapping[str, Any], key: str, where: str = "", *, numbers: bool = False
) -> str | None:
    """A string field, or None when absent or null; ``numbers`` also takes JSON integers.

    Codes and numbers (mobile, dest_code, extend) are strings in the docs, but JSON producers
    in Java/PHP often emit them as numbers; an integer converts without ambiguity.
    """
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    expected = "a string or an integer" if numbers else "a string"
    raise WebhookError(400, f"{field_name(where, key)} must be {expected}, not {json_type(value)}")


def required_str(
    obj: Mapping[str, Any], key: str, where: str = "", *, numbers: bool = False
) -> str:
    """Like :func:`optional_str`, but absent or null is a 400 naming the field."""
    value = optional_str(obj, key, where, numbers=numbers)
    if value is None:
        raise WebhookError(400, f"{field_name(where, key)} is missing")
    return value


# Separators people and systems put inside phone numbers; anything else (letters, '*' of a
# masked number, full-width digits) means it is not a number we can reply to.
_PHONE_CHARS = re.compile(r"\+?[0-9 ()./-]+")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def parse_phone(raw: str, field: str, nationcode: str | None = "86") -> str:
    """``raw`` as E.164 via :func:`e164`, or WebhookError(400) naming ``field``."""
    text = raw.strip()
    if not _PHONE_CHARS.fullmatch(text):
        raise WebhookError(400, f"{field}: {raw!r} is not a phone number")
    phone = e164(text, nationcode)
    if not _E164.fullmatch(phone):
        raise WebhookError(400, f"{field}: {raw!r} is not a valid phone number ({phone})")
    return phone


def build_inbound(
    *,
    where: str,
    provider: ProviderName,
    msg_id: str,
    phone: str,
    to: str | None,
    text: str,
    sent_at: datetime | None,
    received_at: datetime,
    names: Mapping[str, str] | None = None,
) -> InboundSms:
    """Construct the event, turning the model's limits (text length, id length) into a 400.

    ``names`` maps the event's field names to the provider's (``text`` → ``Body``), so the
    reason names the field the provider actually sent.
    """
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        # Our bug, not the provider's: never answer it with a 400 the provider would log.
        raise ValueError("received_at must be timezone-aware")
    try:
        return InboundSms(
            provider=provider,
            msg_id=msg_id,
            phone=phone,
            to=to,
            text=text,
            sent_at=sent_at,
            received_at=received_at,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        loc = (names or {}).get(loc, loc)
        raise WebhookError(400, f"{field_name(where, loc)}: {err['msg']}") from None

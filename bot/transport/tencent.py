"""Tencent Cloud SMS 回复回调 (reply callback): the JSON body into events.

Reference: ``shared/reference/providers.md`` §2.3. Tencent signs nothing (only its source IP
list is published), so the web layer must protect this endpoint with
:mod:`bot.transport.auth`. The documented sample is one object; arrays are accepted too, as
Tencent's status callback uses them. A bad item rejects the whole request (see aliyun.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from bot.transport.inbound import (
    InboundSms,
    WebhookError,
    build_inbound,
    content_id,
    field_name,
    json_type,
    load_json_objects,
    optional_str,
    parse_phone,
    required_str,
)

# Answer to a callback. Do not mutate.
ACK: Final[dict[str, int | str]] = {"result": 0, "errmsg": "OK"}

DEFAULT_NATIONCODE: Final = "86"
_NATIONCODE: Final = re.compile(r"[1-9][0-9]{0,3}")
_DIGITS: Final = re.compile(r"[0-9]{1,12}")


def parse(body: bytes, received_at: datetime) -> list[InboundSms]:
    """Every reply in a callback (one object, or an array), or WebhookError(400)."""
    return [
        _message(item, f"item {i}", received_at) for i, item in enumerate(load_json_objects(body))
    ]


def _message(item: dict[str, Any], where: str, received_at: datetime) -> InboundSms:
    nationcode = _nationcode(item, where)
    raw_mobile = required_str(item, "mobile", where, numbers=True)
    phone = parse_phone(raw_mobile, field_name(where, "mobile"), nationcode)
    text = required_str(item, "text", where)
    seconds = _unix_time(item.get("time"), where)
    try:
        if seconds <= 0:
            raise ValueError(seconds)
        sent_at = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise WebhookError(400, f"{field_name(where, 'time')}: {seconds} is out of range") from None
    # The extension code is off by default, and then may come as "".
    extend = optional_str(item, "extend", where, numbers=True) or None
    # sign (our signature name) is not needed downstream: ignored, like any unknown field.
    return build_inbound(
        where=where,
        provider="tencent",
        # Tencent gives no message id: a retry repeats mobile, time and text exactly, while a
        # borrower's second identical reply has a new time.
        msg_id=content_id("tencent", phone, seconds, text),
        phone=phone,
        to=extend,
        text=text,
        sent_at=sent_at,
        received_at=received_at,
    )


def _nationcode(item: dict[str, Any], where: str) -> str:
    raw = optional_str(item, "nationcode", where, numbers=True)
    if raw is None or not raw.strip():
        return DEFAULT_NATIONCODE
    code = raw.strip().removeprefix("+")
    if not _NATIONCODE.fullmatch(code):
        raise WebhookError(400, f"{field_name(where, 'nationcode')}: {raw!r} is not a country code")
    return code


def _unix_time(value: object, where: str) -> int:
    """Unix seconds from an integer, an integral number, or a string of digits."""
    name = field_name(where, "time")
    if value is None:
        # Without a time, two identical replies (好的, 好的) would dedupe into one.
        raise WebhookError(400, f"{name} is missing")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < 12  # bound before int(): 1E999999 must not become an integer
        and value == value.to_integral_value()
    ):
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    shown = repr(value) if isinstance(value, str) else json_type(value)
    raise WebhookError(400, f"{name} must be unix seconds, not {shown}")

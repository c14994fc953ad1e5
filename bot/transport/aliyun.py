"""Alibaba Cloud SMS 上行短信 (SmsUp) HTTP batch push: the JSON body into events.

Reference: ``shared/reference/providers.md`` §2.2. Aliyun signs nothing, so the web layer
must protect this endpoint with :mod:`bot.transport.auth` (path token and/or IP allow-list).

One request carries an array of messages. Any bad item rejects the whole request with a 400
naming the item's index: answering 200 would acknowledge (and so lose) the bad item, and
Aliyun's retries repeat the batch exactly, so the good items are never half-processed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
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

# Answer to a push: Aliyun only checks that ``code`` is numeric. Do not mutate.
ACK: Final[dict[str, int | str]] = {"code": 0, "msg": "接收成功"}
# Answer to the GET connectivity probe (within 700 ms). Do not mutate.
PROBE_ACK: Final[dict[str, int | str]] = {"code": 0, "msg": "成功"}

# send_time has no zone; Aliyun means Beijing time. A fixed +08:00 is exact (no DST in China
# since 1991) and, unlike ZoneInfo, needs no tzdata in a slim container.
CHINA_TZ: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
_SEND_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

# sequence_id arrives as a string, an integer or (MNS queue mode) a Double such as
# 1.234567890E9; all must map to one dedup key. Bounded so a hostile 1E999999 cannot make us
# build a million-digit integer; 20 digits covers any 64-bit id.
_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_MAX_SEQUENCE_DIGITS: Final = 20


def parse(body: bytes, received_at: datetime) -> list[InboundSms]:
    """Every message of a push (a JSON array, or a single object), or WebhookError(400)."""
    return [
        _message(item, f"item {i}", received_at) for i, item in enumerate(load_json_objects(body))
    ]


def _message(item: dict[str, Any], where: str, received_at: datetime) -> InboundSms:
    raw_phone = required_str(item, "phone_number", where, numbers=True)
    phone = parse_phone(raw_phone, field_name(where, "phone_number"))
    text = required_str(item, "content", where)
    raw_time = optional_str(item, "send_time", where)
    sent_at = _send_time(raw_time, where) if raw_time else None
    dest_code = optional_str(item, "dest_code", where, numbers=True) or None
    sequence_id = _sequence_id(item.get("sequence_id"), where)
    if sequence_id is not None:
        msg_id = f"aliyun:{sequence_id}"
    elif raw_time:
        msg_id = content_id("aliyun", phone, raw_time, text)
    else:
        # Without an id or a time, two identical replies (好的, 好的) would dedupe into one.
        raise WebhookError(400, f"{where}: neither sequence_id nor send_time is given")
    # sign_name is optional and not needed downstream: ignored, like any unknown field.
    return build_inbound(
        where=where,
        provider="aliyun",
        msg_id=msg_id,
        phone=phone,
        to=dest_code,
        text=text,
        sent_at=sent_at,
        received_at=received_at,
        names={"text": "content"},
    )


def _send_time(raw: str, where: str) -> datetime:
    try:
        return datetime.strptime(raw.strip(), _SEND_TIME_FORMAT).replace(tzinfo=CHINA_TZ)
    except ValueError:
        raise WebhookError(
            400, f"{field_name(where, 'send_time')}: {raw!r} is not yyyy-MM-dd HH:mm:ss"
        ) from None


def _sequence_id(value: object, where: str) -> str | None:
    """The id as a canonical decimal integer string, None when absent, or a 400."""
    name = field_name(where, "sequence_id")
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise WebhookError(400, f"{name} must be a string or a number, not {json_type(value)}")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    else:
        # The pattern, not Decimal(), decides: Decimal also takes "NaN", "1_000" and " -1 ".
        if not _NUMBER.fullmatch(value.strip()):
            raise WebhookError(400, f"{name}: {value!r} is not a number")
        number = Decimal(value.strip())
    if not number.is_finite() or number < 0 or number.adjusted() >= _MAX_SEQUENCE_DIGITS:
        raise WebhookError(400, f"{name}: {value} is not a non-negative id of at most 20 digits")
    if number != number.to_integral_value():
        raise WebhookError(400, f"{name}: {value} is not an integer")
    return str(int(number))

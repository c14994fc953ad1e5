"""The generic signed JSON webhook, for gateways we integrate ourselves.

Body: ``{"id", "from", "to", "text", "sent_at"}``; ``to`` and ``sent_at`` may be null or
absent, ``sent_at`` is ISO-8601 with an offset, other fields are ignored.

Headers: ``X-Smsbot-Timestamp`` (unix seconds) and ``X-Smsbot-Signature`` =
``hex(HMAC-SHA256(secret, f"{timestamp}.".encode() + raw_body))``, optionally written
``sha256=<hex>``. Signing the timestamp with the body lets the replay window be enforced; a
replay inside the window is caught by deduplication on ``id``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Final

from bot.transport.inbound import (
    InboundSms,
    WebhookError,
    build_inbound,
    load_json,
    optional_str,
    parse_phone,
    required_str,
    same_secret,
)

TIMESTAMP_HEADER: Final = "X-Smsbot-Timestamp"
SIGNATURE_HEADER: Final = "X-Smsbot-Signature"
DEFAULT_WINDOW: Final = timedelta(minutes=5)

_MAX_ID: Final = 128  # "generic:" + id must fit the event's 200-character msg_id
_MAX_TIMESTAMP_DIGITS: Final = 12


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex signature (without the ``sha256=`` prefix) a sender puts in the header."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
) -> None:
    """Accept the request or raise WebhookError(403) saying why.

    The signature is checked before the time, so a stale-timestamp reason is only ever given
    for a genuine request (a sender's clock skew), never to a forger.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not secret:
        # An empty key is one anyone can sign with: an unconfigured secret must fail closed.
        raise WebhookError(403, "generic webhook secret is not configured")
    if not timestamp_header:
        raise WebhookError(403, f"missing {TIMESTAMP_HEADER} header")
    if not signature_header:
        raise WebhookError(403, f"missing {SIGNATURE_HEADER} header")
    stamp = timestamp_header.strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
        raise WebhookError(403, f"{TIMESTAMP_HEADER} is not unix seconds")
    timestamp = int(stamp)
    given = signature_header.strip()
    if given[:7].lower() == "sha256=":
        given = given[7:]
    # Hex is case-insensitive; our digest is lower-case.
    if not same_secret(sign(secret, timestamp, body), given.lower()):
        raise WebhookError(403, f"invalid {SIGNATURE_HEADER}")
    # In plain seconds: a far-future timestamp must be refused, not overflow datetime.
    age = now.timestamp() - timestamp
    limit = window.total_seconds()
    if age > limit:
        old = timedelta(seconds=round(age))
        raise WebhookError(403, f"{TIMESTAMP_HEADER} is {old} old, outside the replay window")
    if -age > limit:
        ahead = timedelta(seconds=round(-age))
        raise WebhookError(403, f"{TIMESTAMP_HEADER} is {ahead} in the future")


def parse(body: bytes, received_at: datetime) -> InboundSms:
    """The message in an (already verified) generic body, or WebhookError(400)."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise WebhookError(400, "body must be a JSON object")
    msg_id = required_str(data, "id")
    if not msg_id.strip() or len(msg_id) > _MAX_ID:
        raise WebhookError(400, f"id must be 1 to {_MAX_ID} characters")
    phone = parse_phone(required_str(data, "from"), "from")
    to = optional_str(data, "to") or None
    text = required_str(data, "text")
    raw_sent = optional_str(data, "sent_at")
    sent_at = _sent_at(raw_sent) if raw_sent is not None else None
    return build_inbound(
        where="",
        provider="generic",
        msg_id=f"generic:{msg_id}",
        phone=phone,
        to=to,
        text=text,
        sent_at=sent_at,
        received_at=received_at,
    )


def _sent_at(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise WebhookError(400, f"sent_at: {raw!r} is not an ISO-8601 time") from None
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time is ambiguous (Beijing? UTC?); the sender knows its offset.
        raise WebhookError(400, f"sent_at: {raw!r} has no UTC offset")
    return value

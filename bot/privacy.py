"""Masking of personal data before it reaches a log line (《个人信息保护法》)."""

from __future__ import annotations

import re

_ID_OR_CARD = re.compile(r"\d{15,19}|\d{17}[\dXx]")
_PHONE = re.compile(r"(\+?\d{2,3})?(1\d{2})\d{4}(\d{4})")
# One of our ids as a whole token: exactly 32 lower-case hex characters, at least one a letter
# (no phone, ID or card number has a letter a-f in it).
_OUR_ID = re.compile(r"(?<![0-9A-Za-z])((?=[0-9a-f]*[a-f])[0-9a-f]{32})(?![0-9A-Za-z])")


def mask_phone(phone: str) -> str:
    """+8613800138000 → +86138****8000; short or odd numbers keep only their last 2 digits."""
    digits = phone.lstrip("+")
    if len(digits) >= 11:
        return phone[: len(phone) - 8] + "****" + phone[-4:]
    return "*" * max(len(phone) - 2, 0) + phone[-2:]


def mask_name(name: str) -> str:
    return (name[:1] + "*" * min(max(len(name) - 1, 1), 3)) if name else ""


def mask_text(text: str) -> str:
    """Free text for logs: ID and card numbers, then phone numbers, are masked — except
    inside our own ids (32 hex characters, ``bot.ids``: a run of zeros in one read as a card
    number, so a message could no longer be found by its id in the log)."""
    parts = _OUR_ID.split(text)
    for i in range(0, len(parts), 2):  # the odd parts are the ids split out
        part = _ID_OR_CARD.sub(
            lambda m: m.group()[:4] + "*" * (len(m.group()) - 8) + m.group()[-4:], parts[i]
        )
        parts[i] = _PHONE.sub(lambda m: (m.group(1) or "") + m.group(2) + "****" + m.group(3), part)
    return "".join(parts)

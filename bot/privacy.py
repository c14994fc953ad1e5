"""Masking of personal data before it reaches a log line (《个人信息保护法》)."""

from __future__ import annotations

import re

_ID_OR_CARD = re.compile(r"\d{15,19}|\d{17}[\dXx]")
_PHONE = re.compile(r"(\+?\d{2,3})?(1\d{2})\d{4}(\d{4})")


def mask_phone(phone: str) -> str:
    """+8613800138000 → +86138****8000; short or odd numbers keep only their last 2 digits."""
    digits = phone.lstrip("+")
    if len(digits) >= 11:
        return phone[: len(phone) - 8] + "****" + phone[-4:]
    return "*" * max(len(phone) - 2, 0) + phone[-2:]


def mask_name(name: str) -> str:
    return (name[:1] + "*" * min(max(len(name) - 1, 1), 3)) if name else ""


def mask_text(text: str) -> str:
    """Free text for logs: ID and card numbers, then phone numbers, are masked."""
    text = _ID_OR_CARD.sub(
        lambda m: m.group()[:4] + "*" * (len(m.group()) - 8) + m.group()[-4:], text
    )
    return _PHONE.sub(lambda m: (m.group(1) or "") + m.group(2) + "****" + m.group(3), text)

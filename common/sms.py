"""SMS length arithmetic (SMS-ENC-01): encoding, units and segments of one message.

Shared by the template validator and the content checker, so both count alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = frozenset("^{}\\[~]|€")  # each costs two septets


@dataclass(frozen=True)
class Length:
    encoding: Literal["gsm7", "ucs2"]
    units: int  # characters as the network counts them (septets or UTF-16 units)
    segments: int


def sms_length(text: str) -> Length:
    """Encoding, length and segment count of one SMS, signature included (SMS-ENC-01).

    Any character outside GSM-7 makes the whole message UCS-2: 70 units single, 67 per part of
    a concatenated message. Chinese text is always UCS-2.
    """
    if all(ch in _GSM7 or ch in _GSM7_EXT for ch in text):
        units = sum(2 if ch in _GSM7_EXT else 1 for ch in text)
        single, multi = 160, 153
        encoding: Literal["gsm7", "ucs2"] = "gsm7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # emoji take two units
        single, multi = 70, 67
        encoding = "ucs2"
    segments = 1 if units <= single else math.ceil(units / multi)
    return Length(encoding, units, segments)

"""Borrowers' mobile numbers, validated and normalised with ``phonenumbers`` (libphonenumber's
metadata: number lengths and mobile ranges per country, kept current by its maintainers).

A number without a country code is read as mainland Chinese. Only numbers an SMS can reach
are accepted: ``12345`` is no number at all and ``010-12345678`` a Beijing landline, both
taken as "mobiles" by digit-counting alone.
"""

from __future__ import annotations

from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

DEFAULT_REGION: Final = "CN"
# FIXED_LINE_OR_MOBILE: countries (the US, Canada) whose numbering does not tell them apart.
_TEXTABLE: Final = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


def mobile_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """``raw`` (13800138000, +86 138-0013-8000, 008613800138000 …) as E.164, or ValueError
    saying why it is not a mobile number."""
    if len(raw) > 64:  # bounds the parser's work; no phone number is this long
        raise ValueError("not a phone number (too long)")
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        raise ValueError(f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{raw!r} is not a valid phone number")
    kind = phonenumbers.number_type(number)
    if kind not in _TEXTABLE:
        what = "a landline" if kind == PhoneNumberType.FIXED_LINE else "not a mobile number"
        raise ValueError(f"{raw!r} is {what}: an SMS cannot reach it")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)

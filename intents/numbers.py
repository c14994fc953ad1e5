"""Chinese and Arabic numerals as borrowers write them: 五百, 一千二, 贰仟, 1.2万, 3k, ¥1,500."""

from __future__ import annotations

import re

DIGITS: dict[str, int] = {
    "零": 0, "〇": 0, "洞": 0,
    "一": 1, "壹": 1, "幺": 1,
    "二": 2, "两": 2, "贰": 2, "俩": 2,
    "三": 3, "叁": 3, "仨": 3,
    "四": 4, "肆": 4,
    "五": 5, "伍": 5,
    "六": 6, "陆": 6,
    "七": 7, "柒": 7,
    "八": 8, "捌": 8,
    "九": 9, "玖": 9,
}  # fmt: skip
SMALL_UNITS: dict[str, int] = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
BIG_UNITS: dict[str, int] = {"万": 10_000, "萬": 10_000, "亿": 100_000_000}
LATIN_UNITS: dict[str, int] = {"k": 1000, "w": 10_000}

CN_NUMERAL_CHARS = "".join(DIGITS) + "".join(SMALL_UNITS) + "".join(BIG_UNITS)
# A run of Chinese numerals, or Arabic digits with an optional Chinese/Latin multiplier and one
# digit of the next lower unit (1万2, 3千5, 1w2 = 12000).
NUMBER_PATTERN = (
    rf"(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?\s*(?:[{''.join(SMALL_UNITS)}{''.join(BIG_UNITS)}]"
    rf"(?:[{''.join(DIGITS)}\d](?![{''.join(SMALL_UNITS)}]))?|[kw](?:\d(?![\d.]))?(?![a-z]))?"
    rf"|[{CN_NUMERAL_CHARS}]+"
)
NUMBER_RE = re.compile(NUMBER_PATTERN)


# No borrower pays, owes or waits more than this: a bigger number (400 digits, 一万亿亿) is
# not a figure we act on, and floats that large lose their digits or become infinite, which
# then overflows whatever converts them (int(), timedelta).
MAX_NUMBER = 1e12


def parse_number(token: str) -> float | None:
    """Value of one numeral token, or None when it is not a number we understand (including
    one above :data:`MAX_NUMBER`)."""
    token = token.replace(",", "").replace(" ", "").lower()
    if not token:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(.*)", token)
    value = _arabic_with_unit(float(m.group(1)), m.group(2)) if m else parse_chinese(token)
    return value if value is not None and 0 <= value <= MAX_NUMBER else None


def _arabic_with_unit(value: float, rest: str) -> float | None:
    if not rest:
        return value
    unit_char, tail = rest[0], rest[1:]
    unit = SMALL_UNITS.get(unit_char) or BIG_UNITS.get(unit_char) or LATIN_UNITS.get(unit_char)
    if unit is None:
        return None
    result = value * unit
    if tail:  # 1千5 → 1500, 2万5 → 25000: the trailing digit counts in the next lower unit
        d = int(tail) if tail.isdigit() else DIGITS.get(tail)
        if d is None:
            return None
        result += d * unit / 10
    return result


def parse_chinese(token: str) -> float | None:
    """Chinese numerals including colloquial elision: 一千二 → 1200, 两万五 → 25000."""
    if not token or any(
        c not in DIGITS and c not in SMALL_UNITS and c not in BIG_UNITS for c in token
    ):
        return None
    if all(c in DIGITS for c in token):
        # Digit-by-digit reading (一五零零) is only plausible for several digits.
        return float("".join(str(DIGITS[c]) for c in token)) if len(token) > 1 else DIGITS[token]
    total = 0
    section = 0  # value below the current 万/亿
    digit: int | None = None
    last_unit = 0
    for c in token:
        if c in DIGITS:
            digit = DIGITS[c]
        elif c in SMALL_UNITS:
            unit = SMALL_UNITS[c]
            section += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
        else:
            unit = BIG_UNITS[c]
            section += digit or 0
            total += (section or 1) * unit
            section, digit, last_unit = 0, None, unit
    if digit is not None:
        # A trailing digit right after a unit is one unit lower: 一千二 = 1200, 两万五 = 25000.
        elided = last_unit >= 10 and token[-2:-1] != "零"
        section += digit * (last_unit // 10) if elided else digit
    return float(total + section)

"""Which column of a lender's account file holds which account field, and what its cells mean.

Lenders' exports name their columns in Chinese or English, with full-width letters, stray
spaces and any case; the synonyms below cover the core-banking and Excel exports we have
seen, and ``--map "手机=phone,客户=name"`` covers the rest.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Final

from pydantic import ValidationError

from bot.phones import mobile_e164
from bot.privacy import mask_phone, mask_text
from bot.records import AccountRecord
from common.errors import SmsbotError, UsageError

REQUIRED: Final = ("id", "name", "phone", "amount_due", "days_overdue", "due_date")
OPTIONAL: Final = ("last4", "tz", "pack", "flow")
FIELDS: Final = REQUIRED + OPTIONAL

_SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "id": ("账户号", "账号", "合同号", "借据号", "id", "account_id"),
    "name": ("姓名", "客户姓名", "name"),
    "phone": ("手机号", "手机", "手机号码", "电话", "phone", "mobile"),
    "amount_due": ("应还金额", "欠款金额", "逾期金额", "金额", "amount", "amount_due"),
    "days_overdue": ("逾期天数", "days_overdue"),
    "due_date": ("到期日", "应还日期", "due_date"),
    "last4": ("尾号", "卡号尾号", "last4"),
    "tz": ("时区", "tz"),
    "pack": ("规则包", "pack"),
    "flow": ("流程", "flow"),
}


class FileProblem(SmsbotError):
    """The whole file cannot be read: unknown format, no header, a required column missing,
    undecodable text. Problems with single rows are ``RowError``s instead."""


def header_key(text: object) -> str:
    """A header cell as compared: NFKC (full-width letters and spaces become ASCII), lower
    case, without spaces, underscores or hyphens ("Amount Due" = "amount_due" = "ＡＭＯＵＮＴ")."""
    if text is None:
        return ""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    return "".join(ch for ch in folded if not (ch.isspace() or ch in "_-"))


_BY_KEY: Final[dict[str, str]] = {
    header_key(s): field for field, synonyms in _SYNONYMS.items() for s in synonyms
}


def parse_map(option: str) -> dict[str, str]:
    """``--map "手机=phone,客户=name"`` as {column: field}; UsageError naming a bad part."""
    mapping: dict[str, str] = {}
    for part in option.replace("，", ",").split(","):
        if not part.strip():
            continue
        column, sep, field = part.partition("=")
        if not sep or not column.strip() or not field.strip():
            raise UsageError(f"--map: {part.strip()!r} is not COLUMN=FIELD")
        mapping[column.strip()] = field.strip()
    return mapping


def check_mapping(mapping: Mapping[str, str] | None) -> None:
    """UsageError unless every field ``mapping`` names is an account field."""
    _mapped(mapping)


def names_any(cells: Sequence[object], mapping: Mapping[str, str] | None = None) -> bool:
    """Whether a row names at least one field (a header short of columns, not a title)."""
    overrides = _mapped(mapping)
    return any(k in overrides or k in _BY_KEY for k in map(header_key, cells))


def _mapped(mapping: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for column, field in (mapping or {}).items():
        if field not in FIELDS:
            raise UsageError(f"--map: unknown field {field!r} (fields: {', '.join(FIELDS)})")
        out[header_key(column)] = field
    return out


def map_header(
    cells: Sequence[object], mapping: Mapping[str, str] | None = None
) -> dict[str, int] | None:
    """{field: column index} when the row has every required field, else None. Columns named
    in ``mapping`` win over synonyms; unknown columns are ignored."""
    overrides = _mapped(mapping)
    found: dict[str, int] = {}
    by_synonym: dict[str, int] = {}
    for index, cell in enumerate(cells):
        key = header_key(cell)
        if not key:
            continue
        if key in overrides:
            found.setdefault(overrides[key], index)
        elif key in _BY_KEY:
            # The first of two synonym columns wins (手机 before 电话, as people read it).
            by_synonym.setdefault(_BY_KEY[key], index)
    # A column named in --map is never also read through its synonym.
    for field, index in by_synonym.items():
        found.setdefault(field, index)
    if all(field in found for field in REQUIRED):
        return found
    return None


def missing_columns(cells: Sequence[object], mapping: Mapping[str, str] | None = None) -> str:
    """The FileProblem message for a header without every required column."""
    overrides = _mapped(mapping)
    fields = {overrides.get(k) or _BY_KEY.get(k) for k in map(header_key, cells)}
    missing = [f for f in REQUIRED if f not in fields]
    # Masked all the same: a header cell may hold anything a lender typed.
    names = [mask_text(str(c).strip()) for c in cells if c is not None and str(c).strip()]
    hint = "; ".join(f"{f} ({'/'.join(_SYNONYMS[f])})" for f in missing)
    return (
        f"required columns missing: {hint}. Columns found: {', '.join(names) or 'none'}."
        ' Name them with --map "COLUMN=FIELD".'
    )


# Cell values. Excel hands us datetimes, ints and floats (13800138000.0, 46000 as a date
# serial); CSV exports hand us text with thousands separators, currency signs, full-width
# digits and Chinese dates. Each function returns the field's value or raises ValueError.

_EXCEL_EPOCH: Final = dt.date(1899, 12, 30)  # serial 1 is 1900-01-01 after Lotus's leap bug
_FLOAT_EXACT: Final = 2**53  # past it an Excel number has lost digits
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_TRAILING_ZEROS = re.compile(r"(\d+)\.0*")
_MONEY_NOISE = str.maketrans("", "", ",¥$ \u00a0元")


def text(value: object) -> str | None:
    """A cell as stripped text with full-width digits and spaces made ASCII; None if empty."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    out = str(value)
    if not out.isascii():
        out = unicodedata.normalize("NFKC", out)
    out = out.strip()
    return out or None


def whole_number(value: object, what: str) -> str:
    """Digits of an id, phone or last4 that Excel may have stored as a float (12345.0)."""
    if isinstance(value, float):
        if not value.is_integer() or abs(value) >= _FLOAT_EXACT:
            raise ValueError(f"{what} stored as an Excel number lost digits; format it as text")
        return str(int(value))
    out = text(value) or ""
    m = _TRAILING_ZEROS.fullmatch(out)
    return m.group(1) if m else out


def money(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("not an amount")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # Excel's binary floats (1234.5600000000001) mean the cents shown in the cell; a real
        # third decimal is kept, for the record's validation to refuse.
        try:
            exact = Decimal(repr(value))
            cents = exact.quantize(Decimal("0.01"))
        except InvalidOperation:  # inf, nan, or past Decimal's precision
            raise ValueError("not an amount") from None
        return cents if abs(exact - cents) < Decimal("1e-6") else exact
    raw = (text(value) or "").translate(_MONEY_NOISE).removeprefix("RMB").removeprefix("CNY")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise ValueError("not an amount") from None
    if not amount.is_finite():
        raise ValueError("not an amount")
    return amount


def days(value: object) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("not a whole number of days")
        return int(value)
    raw = whole_number(value, "days").removesuffix("天").strip()
    if not raw.isdecimal() or len(raw) > 6:
        raise ValueError("not a whole number of days")
    return int(raw)


def date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _serial(value)
    raw = text(value) or ""
    try:
        if m := _DATE.fullmatch(raw) or _COMPACT_DATE.fullmatch(raw):
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if re.fullmatch(r"\d{5}(?:\.\d*)?", raw):
            return _serial(float(raw))
    except ValueError:
        pass
    raise ValueError("not a date (2026-11-20, 2026/11/20, 20261120 or 2026年11月20日)")


def _serial(serial: float) -> dt.date:
    """An Excel date serial (46000 = 2025-12-09); the time of day is dropped."""
    if not 1 <= serial < 2958466:  # Excel's own range: 1900-01-01 to 9999-12-31
        raise ValueError("not a date (Excel date number out of range)")
    return _EXCEL_EPOCH + dt.timedelta(days=int(serial))


def last4(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Excel drops the leading zeros of a numeric cell: 0123 arrives as 123.
        return whole_number(value, "last4").zfill(4)
    return whole_number(value, "last4")


def filled(cell: object) -> bool:
    return cell is not None and not (isinstance(cell, str) and not cell.strip())


def record(
    cells: Sequence[object], header: Mapping[str, int], flow: str | None
) -> AccountRecord | list[tuple[str | None, str]]:
    """A data row as a record, or (field or None, message) for each thing wrong with it."""
    values: dict[str, object] = {}
    errors: list[tuple[str | None, str]] = []
    for field, index in header.items():
        cell = cells[index] if index < len(cells) else None
        if not filled(cell):
            if field in REQUIRED:
                errors.append((field, "empty"))
            continue
        try:
            values[field] = _CONVERT[field](cell)
        except ValueError as exc:
            errors.append((field, str(exc)))
    if "flow" not in values and flow is not None:
        values["flow"] = flow
    if errors:
        return errors
    try:
        return AccountRecord.model_validate(values)
    except ValidationError as exc:
        return [
            (str(e["loc"][0]) if e["loc"] else None, e["msg"].removeprefix("Value error, "))
            for e in exc.errors(include_url=False, include_input=False)
        ]


# Mainland mobile numbers are allocated in blocks of 10,000 (the 7-digit 号段), and
# libphonenumber's ranges for them go no deeper than 5 digits, so one valid 11-digit number
# vouches for its whole block. Parsing costs ~0.4 ms a number, most of an import's time; a
# lender's file has a few thousand blocks. Invalid numbers always take the full check.
_VALID_BLOCKS: set[str] = set()
_MAX_BLOCKS: Final = 200_000
_BARE_MOBILE = re.compile(r"1\d{10}")


def _phone(cell: object) -> str:
    raw = whole_number(cell, "phone")
    bare = raw.replace(" ", "").replace("-", "")
    known = _BARE_MOBILE.fullmatch(bare) is not None
    if known and bare[:7] in _VALID_BLOCKS:
        return "+86" + bare
    try:
        e164 = mobile_e164(raw)
        if known and e164 == "+86" + bare and len(_VALID_BLOCKS) < _MAX_BLOCKS:
            _VALID_BLOCKS.add(bare[:7])
        return e164
    except ValueError as exc:
        # Its reason quotes the number; the error file and the CLI's output show it masked.
        raise ValueError(str(exc).replace(repr(raw), mask_phone(raw))) from None


def _text(cell: object) -> str:
    return text(cell) or ""


_CONVERT: Final[dict[str, Callable[[object], object]]] = {
    "id": lambda v: whole_number(v, "id"),
    "name": _text,
    "phone": _phone,
    "amount_due": money,
    "days_overdue": days,
    "due_date": date,
    "last4": last4,
    "tz": _text,
    "pack": _text,
    "flow": _text,
}

"""The contact window: when a message may be sent so that it *arrives* at an allowed time.

Pure functions (the area-code table is read once per path and cached). The gate asks
:func:`zones_for` where the borrower may be, then :func:`next_allowed` when a message may go.

Semantics, in absolute time (so DST and zones east or west of UTC need no special cases):

* For a zone and a local date D the window is the interval ``[open_D, close_D]`` where
  ``open_D`` is the instant the wall clock reaches ``window.start`` on D and ``close_D`` the
  instant it reaches ``min(window.end, window.hard_end)``. A wall time that does not exist (the
  spring-forward gap) maps to the transition instant; a wall time that occurs twice (fall-back)
  maps to the *later* instant for an opening and the *earlier* one for a closing, so the
  window never includes a moment whose local time is outside it.
* A message sent at ``t`` may arrive any time in ``[t, t + latency_buffer]``: that whole
  interval must lie inside one day's window in EVERY candidate zone (CN-TIME-01, US-TIME-01,
  multi-zone: all must pass), and must not overlap any borrower quiet period (open interval:
  arriving exactly when a quiet period starts or ends is fine, as at the window's end).
* Quiet periods are wall-clock periods in the borrower's zone; with several candidate zones
  they are honoured in each of them. ``weekdays`` names the local day a period *starts* on.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import ConfigError
from common.yamlio import load_yaml, validation_problems
from policy.pack import CONFIG_DIR, Pack, Window

UTC = dt.UTC
DEFAULT_AREA_CODES = CONFIG_DIR / "us_area_codes.yaml"
NANP_PREFIX = "+1"
# How far ahead next_allowed looks before it gives up.
SEARCH_HORIZON = dt.timedelta(days=7)
# SMS-TTL-01: never ask a carrier to keep trying longer than this.
MAX_TTL = dt.timedelta(minutes=60)

_DAY = dt.timedelta(days=1)
_MIDNIGHT = dt.time(0, 0)


class NoAllowedTime(ValueError):
    """No moment within the search horizon satisfies every zone and quiet period at once."""


# --------------------------------------------------------------------------- preferences


class QuietPeriod(BaseModel):
    """A stretch of local time the borrower asked not to be contacted in.

    ``start``–``end`` may cross midnight (18:00–08:00); ``start == end`` means 24 hours from
    ``start`` (00:00–00:00 is a whole day). ``weekdays`` (0 = Monday … 6 = Sunday) restricts the
    local days the period *starts* on; ``None`` means every day.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: dt.time
    end: dt.time
    weekdays: frozenset[int] | None = None
    label: str
    source_text: str = ""

    @field_validator("start", "end")
    @classmethod
    def _naive(cls, v: dt.time) -> dt.time:
        if v.tzinfo is not None:
            raise ValueError("quiet-period times are local wall times: no tzinfo")
        return v

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, v: frozenset[int] | None) -> frozenset[int] | None:
        if v is not None and (not v or not v <= frozenset(range(7))):
            raise ValueError("weekdays: a non-empty set of 0 (Monday) … 6 (Sunday), or null")
        return v

    @property
    def key(self) -> tuple[dt.time, dt.time, frozenset[int] | None]:
        """What makes two periods the same (label and source text do not)."""
        return (self.start, self.end, self.weekdays)

    def applies_on(self, day: dt.date) -> bool:
        return self.weekdays is None or day.weekday() in self.weekdays


class Preferences(BaseModel):
    """What the borrower told us about when not to contact them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    no_contact: tuple[QuietPeriod, ...] = Field(default_factory=tuple)


# --------------------------------------------------------------------------------- zones


class _AreaCodeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    area_codes: dict[str, list[str]]

    @field_validator("area_codes")
    @classmethod
    def _check(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for code, zones in v.items():
            if len(code) != 3 or not code.isdigit() or code[0] in "01":
                raise ValueError(f"area code {code!r}: expected three digits, not starting 0/1")
            if not zones:
                raise ValueError(f"area code {code}: list at least one time zone")
            for name in zones:
                _zone(name)
        return v


@functools.cache
def load_area_codes(path: Path = DEFAULT_AREA_CODES) -> Mapping[str, tuple[ZoneInfo, ...]]:
    """NANP area code → zones, read once per path. Invalid files raise :class:`ConfigError`."""
    doc = load_yaml(path)
    try:
        parsed = _AreaCodeFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc)) from exc
    table = {
        code: tuple(_unique(ZoneInfo(z) for z in zs)) for code, zs in parsed.area_codes.items()
    }
    return MappingProxyType(table)  # cached and shared: read-only


def normalize_phone(phone: str) -> str:
    """``+86 138-0013-8000`` → ``+8613800138000``; ``0086…`` → ``+86…``. No validation."""
    digits = "".join(ch for ch in phone.strip() if ch.isdigit())
    if phone.strip().startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    return digits


def zones_for(
    phone: str,
    account_tz: str | None,
    pack: Pack,
    *,
    area_codes: Path = DEFAULT_AREA_CODES,
) -> list[ZoneInfo]:
    """The zones the borrower may be in; the window must hold in every one of them.

    1. the account's own zone, when set and a valid IANA name (an invalid one is ignored: the
       phone decides, which for +1 numbers is the conservative all-zones answer);
    2. a pack ``phone_zones`` prefix longer than the country code (operator override, +1212);
    3. for +1 numbers, the NANP area-code table (``config/us_area_codes.yaml``);
    4. the longest matching ``phone_zones`` prefix (+86, +1 = every US zone);
    5. the pack's ``timezone_default``.
    """
    if account_tz and account_tz.strip():
        try:
            return [_zone(account_tz.strip())]
        except ValueError:
            pass
    number = normalize_phone(phone)
    best = _longest_prefix(number, pack.phone_zones)
    if best is not None and len(best) > len(NANP_PREFIX) and number.startswith(NANP_PREFIX):
        return _unique(ZoneInfo(z) for z in pack.phone_zones[best])
    if number.startswith(NANP_PREFIX) and len(number) >= 5:
        found = load_area_codes(area_codes).get(number[2:5])
        if found:
            return list(found)
    if best is not None:
        return _unique(ZoneInfo(z) for z in pack.phone_zones[best])
    return [ZoneInfo(pack.timezone_default)]


def _longest_prefix(number: str, table: Mapping[str, list[str]]) -> str | None:
    matches = [p for p in table if number.startswith(p)]
    return max(matches, key=len) if matches else None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _unique(zones: Iterable[ZoneInfo]) -> list[ZoneInfo]:
    return list(dict.fromkeys(zones))


# ------------------------------------------------------------------------------- window


def in_window(
    now: dt.datetime,
    zones: Sequence[ZoneInfo],
    window: Window,
    preferences: Preferences | None = None,
) -> bool:
    """True when a message sent at ``now`` arrives inside the window in every zone, whatever
    the carrier delay up to ``latency_buffer_min``, and outside every quiet period."""
    t = _utc(now)
    periods = _periods(preferences)
    return all(_blocked_until(t, z, window, periods) is None for z in _checked(zones))


def next_allowed(
    now: dt.datetime,
    zones: Sequence[ZoneInfo],
    window: Window,
    preferences: Preferences | None = None,
) -> dt.datetime:
    """The earliest instant ≥ ``now`` at which :func:`in_window` holds, as an aware UTC datetime
    (equal to ``now`` when ``now`` itself is allowed).

    Raises :class:`NoAllowedTime` (a ``ValueError``) when nothing within :data:`SEARCH_HORIZON`
    works: zones whose windows never overlap, a buffer longer than the window, or quiet
    periods covering every allowed moment.
    """
    start = _utc(now)
    checked = _checked(zones)
    periods = _periods(preferences)
    limit = start + SEARCH_HORIZON
    t = start
    while t <= limit:
        ends = [u for z in checked if (u := _blocked_until(t, z, window, periods)) is not None]
        if not ends:
            return t
        t = max(ends)  # every instant before it is blocked in the zone that gave it
    names = ", ".join(str(z) for z in checked)
    raise NoAllowedTime(
        f"no send time within {SEARCH_HORIZON.days} days of {start.isoformat()} arrives inside "
        f"{window.start:%H:%M}–{min(window.end, window.hard_end):%H:%M} "
        f"(latency buffer {window.latency_buffer_min} min) in every zone ({names})"
        + (" and outside the borrower's quiet periods" if periods else "")
    )


def delivery_ttl(
    now: dt.datetime,
    zones: Sequence[ZoneInfo],
    window: Window,
    preferences: Preferences | None = None,
    cap: dt.timedelta = MAX_TTL,
) -> dt.timedelta:
    """SMS-TTL-01: how long the carrier may keep trying a message sent at ``now``.

    ``min(cap, time until the window closes or a quiet period starts in any zone)``, so a late
    delivery can never land outside the window. Zero when ``now`` is not allowed. Since an
    allowed ``now`` is at least ``latency_buffer_min`` before the close, the TTL is never less
    than the buffer (unless the cap is).
    """
    t = _utc(now)
    checked = _checked(zones)
    periods = _periods(preferences)
    if any(_blocked_until(t, z, window, periods) is not None for z in checked):
        return dt.timedelta(0)
    ttl = cap
    for z in checked:
        for a, _b in _forbidden(t, z, window, periods):
            if a >= t:
                ttl = min(ttl, a - t)
    return max(ttl, dt.timedelta(0))


# ------------------------------------------------------------------------------ internals


def _utc(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (use datetime.now(UTC))")
    return now.astimezone(UTC)


def _checked(zones: Sequence[ZoneInfo]) -> list[ZoneInfo]:
    if not zones:
        raise ValueError("at least one time zone is needed")
    return _unique(zones)


def _periods(preferences: Preferences | None) -> tuple[QuietPeriod, ...]:
    return preferences.no_contact if preferences is not None else ()


def _forbidden(
    t: dt.datetime, zone: ZoneInfo, window: Window, periods: tuple[QuietPeriod, ...]
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Open intervals ``(a, b)`` near ``t`` in which no message may be in flight, in ``zone``:
    the nights between windows and the borrower's quiet periods, for the local days around t.
    """
    end = min(window.end, window.hard_end)
    today = t.astimezone(zone).date()
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for day in (today - _DAY, today, today + _DAY):
        night_from = _instant(day - _DAY, end, zone, late=False)
        out.append((night_from, _instant(day, window.start, zone, late=True)))
        for qp in periods:
            if qp.applies_on(day):
                until = day if qp.end > qp.start else day + _DAY
                quiet_from = _instant(day, qp.start, zone, late=False)
                out.append((quiet_from, _instant(until, qp.end, zone, late=True)))
    return out


def _blocked_until(
    t: dt.datetime, zone: ZoneInfo, window: Window, periods: tuple[QuietPeriod, ...]
) -> dt.datetime | None:
    """When ``t`` is blocked in ``zone``, the end of the longest block holding it; else None.

    A message sent at t is in flight during [t, t + buffer]; that meets the open interval
    (a, b) exactly when a - buffer < t < b.
    """
    buffer = dt.timedelta(minutes=window.latency_buffer_min)
    until: dt.datetime | None = None
    for a, b in _forbidden(t, zone, window, periods):
        if a - buffer < t < b and (until is None or b > until):
            until = b
    return until


@functools.lru_cache(maxsize=65536)
def _instant(day: dt.date, wall: dt.time, zone: ZoneInfo, late: bool) -> dt.datetime:
    """The UTC instant the wall clock in ``zone`` shows ``wall`` on ``day``.

    Ambiguous (fall-back): the earlier or the ``late``\\ r occurrence. Non-existent
    (spring-forward gap): the transition instant, when the clock jumps past ``wall``.
    """
    naive = dt.datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first.astimezone(zone).replace(tzinfo=None) == naive:  # exists twice
        return max(first, second) if late else min(first, second)
    # In a gap: the clock jumps past ``wall`` at the transition, which lies between the two
    # readings (whole seconds in tzdata); bisect for the first second with the new offset.
    lo, hi = int(min(first, second).timestamp()), int(max(first, second).timestamp())
    target = dt.datetime.fromtimestamp(hi, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return dt.datetime.fromtimestamp(hi, UTC)

"""The contact window (CN-TIME-01, US-TIME-01, SMS-TTL-01): zones, edges, DST, quiet periods."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bot.compliance.window import (
    NoAllowedTime,
    Preferences,
    QuietPeriod,
    delivery_ttl,
    in_window,
    load_area_codes,
    next_allowed,
    zones_for,
)
from common.errors import ConfigError
from policy.pack import Pack, Window, load_packs

PACKS = load_packs()
CN = PACKS.packs["cn"]
US = PACKS.packs["us"]

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
HNL = ZoneInfo("Pacific/Honolulu")
US_ALL = [ZoneInfo(z) for z in US.phone_zones["+1"]]

WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})
EVENING = QuietPeriod(start=time(18), end=time(8), label="evening")
WORK = QuietPeriod(start=time(9), end=time(18), weekdays=WEEKDAYS, label="working hours")
WEEKEND_ALL_DAY = QuietPeriod(start=time(0), end=time(0), weekdays=WEEKEND, label="weekend")


def local(text: str, zone: ZoneInfo = SH) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def prefs(*periods: QuietPeriod) -> Preferences:
    return Preferences(no_contact=periods)


# ---------------------------------------------------------------------------------- zones


@pytest.mark.parametrize(
    ("phone", "pack", "expected"),
    [
        ("+8613800138000", CN, ["Asia/Shanghai"]),
        ("+86 138-0013-8000", CN, ["Asia/Shanghai"]),
        ("008613800138000", CN, ["Asia/Shanghai"]),
        ("13800138000", CN, ["Asia/Shanghai"]),  # no country code: the pack's default
        ("+85291234567", CN, ["Asia/Hong_Kong"]),  # +852 is longer than any other match
        ("+85361234567", CN, ["Asia/Macau"]),
        ("+447700900123", CN, ["Asia/Shanghai"]),  # no prefix matches: the default
        ("+12125550100", US, ["America/New_York"]),
        ("+1 (415) 555-0100", US, ["America/Los_Angeles"]),
        ("+18085550100", US, ["Pacific/Honolulu"]),
        ("+13125550100", US, ["America/Chicago"]),
        ("+16025550100", US, ["America/Phoenix"]),
        (
            "+19075550100",
            US,
            ["America/Adak", "America/Anchorage", "America/Juneau", "Pacific/Honolulu"],
        ),
        ("+18125550100", US, ["America/Chicago", "America/New_York"]),  # Indiana spans two zones
        ("+18005550100", US, US.phone_zones["+1"]),  # toll-free: not in the table, every US zone
        ("+19995550100", US, US.phone_zones["+1"]),  # unassigned
        ("+1212", US, ["America/New_York"]),
        ("+1", US, US.phone_zones["+1"]),
        ("+14165550100", US, ["America/Toronto"]),  # Canada is in the table too
        ("+12125550100", CN, ["America/New_York"]),  # the table serves any pack
        ("+18005550100", CN, ["Asia/Shanghai"]),  # cn has no +1 list: its default
        ("+8613800138000", US, ["America/New_York"]),  # us has no +86: its default
    ],
)
def test_zones_from_phone(phone: str, pack: Pack, expected: list[str]) -> None:
    assert [z.key for z in zones_for(phone, None, pack)] == expected


@pytest.mark.parametrize(
    ("account_tz", "expected"),
    [
        ("America/Chicago", ["America/Chicago"]),
        (" Asia/Tokyo ", ["Asia/Tokyo"]),
        ("", ["America/New_York"]),
        ("   ", ["America/New_York"]),
        ("Mars/Olympus_Mons", ["America/New_York"]),  # invalid: the phone decides
    ],
)
def test_account_zone_wins(account_tz: str, expected: list[str]) -> None:
    assert [z.key for z in zones_for("+12125550100", account_tz, US)] == expected


def test_pack_prefix_longer_than_country_code_overrides_the_table() -> None:
    pack = US.model_copy(update={"phone_zones": {**US.phone_zones, "+1212": ["America/Chicago"]}})
    assert zones_for("+12125550100", None, pack) == [ZoneInfo("America/Chicago")]
    assert zones_for("+14155550100", None, pack) == [LA]


def test_area_code_table_covers_the_us_and_is_valid() -> None:
    table = load_area_codes()
    assert table is load_area_codes()  # read once
    assert len(table) > 400
    for code in (
        "201",
        "212",
        "213",
        "305",
        "312",
        "415",
        "512",
        "602",
        "702",
        "808",
        "907",
        "917",
    ):
        assert code in table
    assert table["212"] == (NY,)
    assert table["415"] == (LA,)
    assert table["808"] == (HNL,)
    assert all(zones for zones in table.values())


def test_area_code_file_is_chosen_per_path(tmp_path: Path) -> None:
    custom = tmp_path / "codes.yaml"
    custom.write_text('area_codes:\n  "212": [America/Chicago, America/Denver]\n', encoding="utf-8")
    got = zones_for("+12125550100", None, US, area_codes=custom)
    assert [z.key for z in got] == ["America/Chicago", "America/Denver"]
    assert zones_for("+14155550100", None, US, area_codes=custom) == US_ALL
    assert zones_for("+12125550100", None, US) == [NY]


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        (
            'area_codes:\n  "212": [America/New_York]\n  "415": [Pacific/Atlantis]\n',
            3,
            "Pacific/Atlantis",
        ),
        ('area_codes:\n  "21": [America/New_York]\n', 2, "three digits"),
        ('area_codes:\n  "212": []\n', 2, "at least one"),
        ("codes: {}\n", 1, "unknown field"),
    ],
)
def test_area_code_file_errors_name_file_and_line(
    tmp_path: Path, body: str, line: int, needle: str
) -> None:
    bad = tmp_path / f"bad{line}.yaml"
    bad.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_area_codes(bad)
    assert f"{bad}:{line}" in str(err.value) or f"{bad}:" in str(err.value)
    assert needle in str(err.value)


# ------------------------------------------------------------------------- CN window edges


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-05-06 07:59", "2026-05-06 08:00"),
        ("2026-05-06 07:59:59", "2026-05-06 08:00"),
        ("2026-05-06 08:00", "2026-05-06 08:00"),
        ("2026-05-06 12:00", "2026-05-06 12:00"),
        ("2026-05-06 20:14", "2026-05-06 20:14"),  # arrives by 20:59
        ("2026-05-06 20:15", "2026-05-06 20:15"),  # arrives by 21:00 exactly: allowed
        ("2026-05-06 20:15:01", "2026-05-07 08:00"),
        ("2026-05-06 20:16", "2026-05-07 08:00"),
        ("2026-05-06 21:30", "2026-05-07 08:00"),
        ("2026-05-06 23:59:59", "2026-05-07 08:00"),
        ("2026-05-06 00:00", "2026-05-06 08:00"),
        ("2026-05-06 02:00", "2026-05-06 08:00"),
        ("2026-12-31 22:00", "2027-01-01 08:00"),  # across the year
        ("2028-02-28 21:00", "2028-02-29 08:00"),  # leap day
    ],
)
def test_shanghai_window_edges(now: str, expected: str) -> None:
    got = next_allowed(local(now), [SH], CN.window)
    assert got == local(expected)
    assert got.tzinfo is UTC
    assert in_window(got, [SH], CN.window)
    assert in_window(local(now), [SH], CN.window) == (got == local(now))


def test_now_in_any_zone_and_microseconds() -> None:
    now = datetime(2026, 5, 6, 4, 0, 0, 123456, tzinfo=UTC)  # 12:00:00.123456 in Shanghai
    assert next_allowed(now, [SH], CN.window) == now
    assert next_allowed(now.astimezone(NY), [SH], CN.window) == now
    late = local("2026-05-06 20:15:00.000001")
    assert next_allowed(late, [SH], CN.window) == local("2026-05-07 08:00")


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        # Buffer against `end`, not `hard_end`: 20:30 + 45 min = 21:15 is before 22:00 but late.
        (Window(end=time(21), hard_end=time(22), latency_buffer_min=45), "20:30", "next 08:00"),
        (Window(end=time(21), hard_end=time(21), latency_buffer_min=45), "20:30", "next 08:00"),
        (Window(end=time(22), hard_end=time(22), latency_buffer_min=45), "20:30", "20:30"),
        (Window(end=time(22), hard_end=time(22), latency_buffer_min=45), "21:15", "21:15"),
        (Window(end=time(22), hard_end=time(22), latency_buffer_min=45), "21:16", "next 08:00"),
        (Window(end=time(21), hard_end=time(22), latency_buffer_min=0), "21:00", "21:00"),
        (Window(end=time(21), hard_end=time(22), latency_buffer_min=0), "21:00:01", "next 08:00"),
        (Window(end=time(21), hard_end=time(22), latency_buffer_min=180), "18:00", "18:00"),
        (Window(end=time(21), hard_end=time(22), latency_buffer_min=180), "18:01", "next 08:00"),
        (Window(start=time(9, 30), latency_buffer_min=15), "09:29", "09:30"),
    ],
)
def test_end_hard_end_and_buffer(window: Window, now: str, expected: str) -> None:
    day = "2026-05-06"
    want = "2026-05-07 08:00" if expected == "next 08:00" else f"{day} {expected}"
    assert next_allowed(local(f"{day} {now}"), [SH], window) == local(want)


# ---------------------------------------------------------- zones east and west of UTC


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        ("Asia/Kolkata", "2026-01-15 00:00", "2026-01-15 02:30"),  # 05:30 IST → 08:00 IST
        ("Asia/Kathmandu", "2026-01-15 00:00", "2026-01-15 02:15"),  # +05:45
        ("Pacific/Auckland", "2026-01-15 08:00", "2026-01-15 19:00"),  # 21:00 NZDT → 08:00
        ("Pacific/Auckland", "2026-07-15 08:16", "2026-07-15 20:00"),  # 20:16 NZST → 08:00
        ("Pacific/Kiritimati", "2026-01-15 08:00", "2026-01-15 18:00"),  # +14: 22:00 → 08:00
        ("Pacific/Honolulu", "2026-01-15 00:00", "2026-01-15 00:00"),  # 14:00 HST: allowed
        ("Pacific/Honolulu", "2026-01-15 07:00", "2026-01-15 18:00"),  # 21:00 HST → 08:00
        ("America/Los_Angeles", "2026-01-15 08:00", "2026-01-15 16:00"),  # 00:00 PST → 08:00
        ("America/Sao_Paulo", "2026-01-15 10:59", "2026-01-15 11:00"),  # −03, no DST
        ("Etc/UTC", "2026-01-15 20:45", "2026-01-16 08:00"),  # 20:45 + 45 min > 21:00
        ("Etc/UTC", "2026-01-15 20:15", "2026-01-15 20:15"),
    ],
)
def test_zones_east_and_west_of_utc(zone: str, now: str, expected: str) -> None:
    assert next_allowed(utc(now), [ZoneInfo(zone)], CN.window) == utc(expected)


# ------------------------------------------------------------------------- multi-zone US


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Winter: the window opens when Honolulu reaches 08:00 (18:00Z) and closes when New York
        # reaches 20:45 (01:45Z), whatever the other five zones say.
        ("2026-01-15 12:00", "2026-01-15 18:00"),
        ("2026-01-15 02:00", "2026-01-15 18:00"),
        ("2026-01-15 17:59", "2026-01-15 18:00"),
        ("2026-01-15 18:00", "2026-01-15 18:00"),
        ("2026-01-16 01:45", "2026-01-16 01:45"),
        ("2026-01-16 01:46", "2026-01-16 18:00"),
        # Summer: New York is on EDT (20:45 = 00:45Z); Honolulu has no DST (still 18:00Z).
        ("2026-07-15 12:00", "2026-07-15 18:00"),
        ("2026-07-16 00:45", "2026-07-16 00:45"),
        ("2026-07-16 00:46", "2026-07-16 18:00"),
    ],
)
def test_unknown_us_area_code_needs_every_us_zone(now: str, expected: str) -> None:
    zones = zones_for("+18005550100", None, US)
    assert zones == US_ALL
    assert next_allowed(utc(now), zones, US.window) == utc(expected)


@pytest.mark.parametrize(
    ("phone", "now", "expected"),
    [
        ("+12125550100", "2026-01-15 12:00", "2026-01-15 13:00"),  # 07:00 EST → 08:00 EST
        ("+14155550100", "2026-01-15 12:00", "2026-01-15 16:00"),  # 04:00 PST → 08:00 PST
        ("+18085550100", "2026-01-15 12:00", "2026-01-15 18:00"),  # 02:00 HST → 08:00 HST
        ("+12125550100", "2026-01-16 01:45", "2026-01-16 01:45"),  # 20:45 EST
        ("+12125550100", "2026-01-16 01:46", "2026-01-16 13:00"),
        ("+14155550100", "2026-01-16 01:46", "2026-01-16 01:46"),  # 17:46 PST
        # Indiana (812): Chicago opens last (14:00Z), New York closes first (01:45Z).
        ("+18125550100", "2026-01-15 13:30", "2026-01-15 14:00"),
        ("+18125550100", "2026-01-16 01:50", "2026-01-16 14:00"),
    ],
)
def test_area_code_zones(phone: str, now: str, expected: str) -> None:
    zones = zones_for(phone, None, US)
    assert next_allowed(utc(now), zones, US.window) == utc(expected)


def test_windows_that_never_overlap_raise() -> None:
    narrow = Window(start=time(9), end=time(12), hard_end=time(12), latency_buffer_min=15)
    with pytest.raises(NoAllowedTime, match=r"Asia/Shanghai, America/New_York"):
        next_allowed(utc("2026-01-15 00:00"), [SH, NY], narrow)
    assert not in_window(utc("2026-01-15 02:00"), [SH, NY], narrow)
    # The same zones with the normal window do overlap (00:00–01:15Z in January).
    assert next_allowed(utc("2026-01-15 02:00"), [SH, NY], US.window) == utc("2026-01-16 00:00")


def test_buffer_longer_than_the_window_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="latency_buffer_min leaves no time"):
        Window(start=time(8), end=time(8, 30), hard_end=time(8, 30), latency_buffer_min=45)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_allowed(datetime(2026, 1, 15, 12), [SH], CN.window)
    with pytest.raises(ValueError, match="at least one time zone"):
        next_allowed(utc("2026-01-15 00:00"), [], CN.window)
    with pytest.raises(ValueError, match="timezone-aware"):
        in_window(datetime(2026, 1, 15, 12), [SH], CN.window)


def test_duplicate_zones_are_harmless() -> None:
    now = utc("2026-01-15 12:00")
    assert next_allowed(now, [NY, NY, NY], US.window) == next_allowed(now, [NY], US.window)


# ------------------------------------------------------------------------------------ DST


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # New York, spring forward 2026-03-08 02:00 EST → 03:00 EDT: 08:00 EDT is 12:00Z.
        (NY, "2026-03-08 02:30", "2026-03-08 12:00"),  # 21:30 EST on the 7th
        (NY, "2026-03-08 06:30", "2026-03-08 12:00"),  # 01:30 EST
        (NY, "2026-03-08 07:30", "2026-03-08 12:00"),  # 03:30 EDT
        (NY, "2026-03-08 11:59", "2026-03-08 12:00"),  # 07:59 EDT
        (NY, "2026-03-08 12:00", "2026-03-08 12:00"),
        (NY, "2026-03-09 00:45", "2026-03-09 00:45"),  # 20:45 EDT
        (NY, "2026-03-09 00:46", "2026-03-09 12:00"),
        # New York, fall back 2026-11-01 02:00 EDT → 01:00 EST: 08:00 EST is 13:00Z.
        (NY, "2026-11-01 01:30", "2026-11-01 13:00"),  # 21:30 EDT on the 31st
        (NY, "2026-11-01 05:30", "2026-11-01 13:00"),  # 01:30 EDT (first pass)
        (NY, "2026-11-01 06:30", "2026-11-01 13:00"),  # 01:30 EST (second pass)
        (NY, "2026-11-01 12:00", "2026-11-01 13:00"),  # 07:00 EST (12:00Z was 08:00 EDT)
        (NY, "2026-11-01 12:59", "2026-11-01 13:00"),
        (NY, "2026-11-02 01:45", "2026-11-02 01:45"),  # 20:45 EST
        (NY, "2026-11-02 01:46", "2026-11-02 13:00"),
        (NY, "2026-10-31 12:00", "2026-10-31 12:00"),  # 08:00 EDT the day before
        # Los Angeles: 08:00 PDT = 15:00Z on 2026-03-08; 08:00 PST = 16:00Z on 2026-11-01.
        (LA, "2026-03-08 09:00", "2026-03-08 15:00"),  # 01:00 PST
        (LA, "2026-03-08 10:30", "2026-03-08 15:00"),  # 03:30 PDT
        (LA, "2026-03-08 14:59", "2026-03-08 15:00"),
        (LA, "2026-11-01 08:30", "2026-11-01 16:00"),  # 01:30 PDT
        (LA, "2026-11-01 09:30", "2026-11-01 16:00"),  # 01:30 PST
        (LA, "2026-11-01 15:00", "2026-11-01 16:00"),  # 07:00 PST
        (LA, "2026-11-02 04:45", "2026-11-02 04:45"),  # 20:45 PST
        # Sydney, southern hemisphere: DST ends 2026-04-05 03:00 AEDT → 02:00 AEST.
        (ZoneInfo("Australia/Sydney"), "2026-04-04 20:00", "2026-04-04 22:00"),  # 06:00 AEST
        (ZoneInfo("Australia/Sydney"), "2026-10-03 20:00", "2026-10-03 21:00"),  # 07:00 AEDT
    ],
)
def test_dst_transition_days(zone: ZoneInfo, now: str, expected: str) -> None:
    got = next_allowed(utc(now), [zone], US.window)
    assert got == utc(expected)
    assert got.astimezone(zone).time() >= time(8)


def test_dst_evening_deferral_lasts_the_real_elapsed_time() -> None:
    # 21:30 EDT on 31 October to 08:00 EST on 1 November is 11.5 hours, not 10.5.
    now = local("2026-10-31 21:30", NY)
    got = next_allowed(now, [NY], US.window)
    assert got - now == timedelta(hours=11, minutes=30)
    assert got.astimezone(NY).replace(tzinfo=None) == datetime(2026, 11, 1, 8, 0)


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        # A start inside the spring-forward gap opens when the clock jumps past it (03:00 EDT).
        (Window(start=time(2, 30), latency_buffer_min=0), "2026-03-08 06:00", "2026-03-08 07:00"),
        # A start that happens twice opens at the second: until then the clock may read less.
        (Window(start=time(1, 30), latency_buffer_min=0), "2026-11-01 05:00", "2026-11-01 06:30"),
        (Window(start=time(1, 30), latency_buffer_min=0), "2026-11-01 05:45", "2026-11-01 06:30"),
        # An end that happens twice closes at the first.
        (
            Window(start=time(0, 30), end=time(1, 30), hard_end=time(1, 30), latency_buffer_min=0),
            "2026-11-01 05:30",
            "2026-11-01 05:30",
        ),
        (
            Window(start=time(0, 30), end=time(1, 30), hard_end=time(1, 30), latency_buffer_min=0),
            "2026-11-01 05:31",
            "2026-11-02 05:30",  # 00:30 EST the next day
        ),
        # An end inside the gap closes at the jump (02:00 EST = 07:00Z).
        (
            Window(start=time(0, 30), end=time(2, 30), hard_end=time(2, 30), latency_buffer_min=0),
            "2026-03-08 06:59",
            "2026-03-08 06:59",
        ),
        (
            Window(start=time(0, 30), end=time(2, 30), hard_end=time(2, 30), latency_buffer_min=0),
            "2026-03-08 07:01",
            "2026-03-09 04:30",  # 00:30 EDT the next day
        ),
    ],
)
def test_window_edges_inside_transitions(window: Window, now: str, expected: str) -> None:
    assert next_allowed(utc(now), [NY], window) == utc(expected)


# ---------------------------------------------------------------- borrower quiet periods


@pytest.mark.parametrize(
    ("periods", "now", "expected"),
    [
        # Evening 18:00–08:00 (晚上别发): the last send must arrive by 18:00.
        ((EVENING,), "2026-05-06 17:00", "2026-05-06 17:00"),
        ((EVENING,), "2026-05-06 17:15", "2026-05-06 17:15"),
        ((EVENING,), "2026-05-06 17:16", "2026-05-07 08:00"),
        ((EVENING,), "2026-05-06 07:00", "2026-05-06 08:00"),
        # Working hours, weekdays only (2026-05-06 is a Wednesday, 05-09 a Saturday).
        ((WORK,), "2026-05-06 08:00", "2026-05-06 08:00"),
        ((WORK,), "2026-05-06 08:15", "2026-05-06 08:15"),
        ((WORK,), "2026-05-06 08:16", "2026-05-06 18:00"),
        ((WORK,), "2026-05-06 10:00", "2026-05-06 18:00"),
        ((WORK,), "2026-05-09 10:00", "2026-05-09 10:00"),
        ((WORK,), "2026-05-08 20:16", "2026-05-09 08:00"),
        # Weekend, all day: Friday night and Saturday wait for Monday.
        ((WEEKEND_ALL_DAY,), "2026-05-08 20:00", "2026-05-08 20:00"),
        ((WEEKEND_ALL_DAY,), "2026-05-08 23:00", "2026-05-11 08:00"),
        ((WEEKEND_ALL_DAY,), "2026-05-09 10:00", "2026-05-11 08:00"),
        ((WEEKEND_ALL_DAY,), "2026-05-10 23:30", "2026-05-11 08:00"),
        # Crossing midnight: 22:00–09:00 pushes the morning start from 08:00 to 09:00.
        (
            (QuietPeriod(start=time(22), end=time(9), label="night"),),
            "2026-05-06 07:00",
            "2026-05-06 09:00",
        ),
        (
            (QuietPeriod(start=time(23), end=time(10), label="night"),),
            "2026-05-06 08:00",
            "2026-05-06 10:00",
        ),
        # After 20:00 (8点以后别发): the last send goes at 19:15.
        (
            (QuietPeriod(start=time(20), end=time(8), label="after 20:00"),),
            "2026-05-06 19:15",
            "2026-05-06 19:15",
        ),
        (
            (QuietPeriod(start=time(20), end=time(8), label="after 20:00"),),
            "2026-05-06 19:30",
            "2026-05-07 08:00",
        ),
        # Evening + working hours + weekend: only weekdays 08:00–08:15 remain.
        ((EVENING, WORK, WEEKEND_ALL_DAY), "2026-05-06 09:00", "2026-05-07 08:00"),
        ((EVENING, WORK, WEEKEND_ALL_DAY), "2026-05-08 08:16", "2026-05-11 08:00"),
        ((EVENING, WORK, WEEKEND_ALL_DAY), "2026-05-11 08:10", "2026-05-11 08:10"),
        # A weekday-only period that crosses midnight starts on the listed days only.
        (
            (
                QuietPeriod(
                    start=time(18), end=time(8), weekdays=frozenset({4}), label="friday night"
                ),
            ),
            "2026-05-09 07:00",  # Saturday morning, inside Friday's period
            "2026-05-09 08:00",
        ),
        (
            (QuietPeriod(start=time(12), end=time(12), weekdays=frozenset({2}), label="24h"),),
            "2026-05-06 13:00",  # Wednesday 12:00 to Thursday 12:00
            "2026-05-07 12:00",
        ),
    ],
)
def test_quiet_periods_with_the_window(
    periods: tuple[QuietPeriod, ...], now: str, expected: str
) -> None:
    got = next_allowed(local(now), [SH], CN.window, prefs(*periods))
    assert got == local(expected)
    assert in_window(got, [SH], CN.window, prefs(*periods))


def test_quiet_periods_hold_in_every_candidate_zone() -> None:
    # Evening in New York and Los Angeles: open at 08:00 PST (16:00Z), close when New York's
    # 18:00 comes within the 15-minute buffer (22:45Z).
    p = prefs(EVENING)
    assert next_allowed(utc("2026-01-15 12:00"), [NY, LA], US.window, p) == utc("2026-01-15 16:00")
    assert next_allowed(utc("2026-01-15 22:45"), [NY, LA], US.window, p) == utc("2026-01-15 22:45")
    assert next_allowed(utc("2026-01-15 22:46"), [NY, LA], US.window, p) == utc("2026-01-16 16:00")


def test_quiet_period_on_a_dst_day() -> None:
    # Not after 18:00 in New York on the fall-back day: 18:00 EST = 23:00Z, last send 22:45Z.
    p = prefs(QuietPeriod(start=time(18), end=time(8), label="evening"))
    assert in_window(utc("2026-11-01 22:45"), [NY], US.window, p)
    assert next_allowed(utc("2026-11-01 22:46"), [NY], US.window, p) == utc("2026-11-02 13:00")


def test_quiet_all_the_time_raises() -> None:
    always = prefs(QuietPeriod(start=time(0), end=time(0), label="never"))
    with pytest.raises(NoAllowedTime, match="quiet periods"):
        next_allowed(utc("2026-01-15 00:00"), [SH], CN.window, always)
    assert not in_window(utc("2026-01-15 04:00"), [SH], CN.window, always)


def test_empty_preferences_change_nothing() -> None:
    now = local("2026-05-06 21:30")
    assert next_allowed(now, [SH], CN.window, Preferences()) == next_allowed(now, [SH], CN.window)


def test_quiet_period_validation() -> None:
    with pytest.raises(ValueError, match="weekdays"):
        QuietPeriod(start=time(9), end=time(18), weekdays=frozenset({7}), label="x")
    with pytest.raises(ValueError, match="weekdays"):
        QuietPeriod(start=time(9), end=time(18), weekdays=frozenset(), label="x")
    with pytest.raises(ValueError, match="tzinfo"):
        QuietPeriod(start=time(9, tzinfo=UTC), end=time(18), label="x")
    p = Preferences(no_contact=[EVENING])  # a list is accepted; stored as a tuple
    assert p.no_contact == (EVENING,)
    assert hash(p) == hash(Preferences(no_contact=(EVENING,)))


# ------------------------------------------------------------------------- SMS-TTL-01


@pytest.mark.parametrize(
    ("zones", "periods", "now", "ttl_min"),
    [
        ([SH], (), local("2026-05-06 08:00"), 60),
        ([SH], (), local("2026-05-06 20:14"), 46),  # expires at 21:00
        ([SH], (), local("2026-05-06 20:15"), 45),
        ([SH], (), local("2026-05-06 21:30"), 0),  # not allowed: no TTL at all
        ([SH], (EVENING,), local("2026-05-06 17:00"), 60),
        ([SH], (EVENING,), local("2026-05-06 17:10"), 50),
        (US_ALL, (), utc("2026-01-16 01:30"), 30),  # New York closes at 21:00 EST = 02:00Z
    ],
)
def test_delivery_ttl(
    zones: list[ZoneInfo], periods: tuple[QuietPeriod, ...], now: datetime, ttl_min: int
) -> None:
    window = US.window if zones == US_ALL else CN.window
    assert delivery_ttl(now, zones, window, prefs(*periods)) == timedelta(minutes=ttl_min)


# ------------------------------------------------------------------------- properties

# Zones whose DST transitions fall between 00:00 and 03:59 local time; the property windows
# open at 05:00 or later and quiet periods start and end at 04:00 or later, so the oracle
# below may read wall clocks naively (it never needs to know about a transition).
PROP_ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "Pacific/Honolulu",
    "Europe/London",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Etc/UTC",
]


def oracle(t: datetime, zones: list[ZoneInfo], window: Window, preferences: Preferences) -> bool:
    """An independent, wall-clock reading of the rule: the send and the latest arrival fall on
    the same local day inside [start, end], and [send, arrival] meets no quiet period."""
    buffer = timedelta(minutes=window.latency_buffer_min)
    end = min(window.end, window.hard_end)
    for zone in zones:
        # Arithmetic in UTC: adding to a local time drops its fold (the second 02:00 of a
        # night whose clocks go back would become the first one, an hour earlier).
        sent, arrived = t.astimezone(zone), (t.astimezone(UTC) + buffer).astimezone(zone)
        if sent.date() != arrived.date() or sent.time() < window.start or arrived.time() > end:
            return False
        a = sent.replace(tzinfo=None)
        b = a + buffer
        for qp in preferences.no_contact:
            for day in (a.date() - timedelta(days=1), a.date()):
                if qp.weekdays is not None and day.weekday() not in qp.weekdays:
                    continue
                qs = datetime.combine(day, qp.start)
                qe = datetime.combine(day if qp.end > qp.start else day + timedelta(days=1), qp.end)
                if a < qe and b > qs:
                    return False
    return True


minute_times = st.builds(lambda h, m: time(h, m), st.integers(4, 23), st.integers(0, 59))


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start = time(draw(st.integers(5, 11)), draw(st.sampled_from([0, 15, 30, 59])))
    end = time(draw(st.integers(14, 22)), draw(st.sampled_from([0, 30, 45])))
    hard_end = max(end, time(draw(st.integers(14, 23)), draw(st.sampled_from([0, 59]))))
    return Window(
        start=start, end=end, hard_end=hard_end, latency_buffer_min=draw(st.integers(0, 90))
    )


quiet_periods = st.builds(
    lambda s, e, w, i: QuietPeriod(start=s, end=e, weekdays=w, label=f"p{i}"),
    minute_times,
    minute_times,
    st.none() | st.frozensets(st.integers(0, 6), min_size=1, max_size=6),
    st.integers(0, 9),
)
zone_lists = st.lists(st.sampled_from(PROP_ZONES), min_size=1, max_size=3, unique=True).map(
    lambda names: [ZoneInfo(n) for n in names]
)


def _transitions(year: int) -> list[datetime]:
    """Every UTC hour in ``year`` at which one of PROP_ZONES changes its offset."""
    zones = [ZoneInfo(z) for z in PROP_ZONES]

    def offsets(t: datetime) -> list[timedelta | None]:
        return [t.astimezone(z).utcoffset() for z in zones]

    out = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        if offsets(day) != offsets(day + timedelta(days=1)):
            out += [
                day + timedelta(hours=h + 1)
                for h in range(24)
                if offsets(day + timedelta(hours=h)) != offsets(day + timedelta(hours=h + 1))
            ]
        day += timedelta(days=1)
    return out


TRANSITIONS = _transitions(2026)
instants = st.one_of(
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    # around the DST changes, where wall-clock arithmetic goes wrong
    st.builds(
        lambda at, shift: at + shift,
        st.sampled_from(TRANSITIONS),
        st.timedeltas(min_value=timedelta(hours=-36), max_value=timedelta(hours=36)),
    ),
)
PROPS = settings(max_examples=250, deadline=None)


def _candidates(now: datetime, until: datetime) -> list[datetime]:
    """Minute-aligned instants in (now, until): all of them when few, else a spread sample plus
    the last two hours in full."""
    first = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    total = int((until - first).total_seconds() // 60) + 1 if until > first else 0
    steps = (
        range(total)
        if total <= 3000
        else [*range(0, total, total // 1500), *range(total - 120, total)]
    )
    return [t for k in steps if (t := first + timedelta(minutes=k)) < until]


@PROPS
@given(
    now=instants,
    zones=zone_lists,
    window=windows(),
    periods=st.lists(quiet_periods, max_size=3),
    local_now=st.sampled_from(PROP_ZONES),
)
def test_next_allowed_is_the_earliest_allowed_time(
    now: datetime, zones: list[ZoneInfo], window: Window, periods: list[QuietPeriod], local_now: str
) -> None:
    p = Preferences(no_contact=periods)
    now = now.astimezone(ZoneInfo(local_now))  # callers may pass any zone
    try:
        got = next_allowed(now, zones, window, p)
    except NoAllowedTime:
        event("no allowed time")
        horizon = [now + timedelta(minutes=k) for k in range(0, 7 * 24 * 60, 17)]
        assert not any(oracle(t, zones, window, p) for t in horizon)
        return
    # Compared and stepped in UTC: a local time's fold takes no part in comparisons across
    # zones (PEP 495) and is dropped by arithmetic, and "now" may be the second 02:00 of a
    # night whose clocks go back.
    instant = now.astimezone(UTC)
    event("allowed now" if got == instant else "deferred")
    assert instant <= got <= instant + timedelta(days=7)
    assert got.tzinfo is UTC
    assert in_window(got, zones, window, p)
    assert oracle(got, zones, window, p)
    assert next_allowed(got, zones, window, p) == got
    assert in_window(now, zones, window, p) == (got == instant) == oracle(now, zones, window, p)
    for t in _candidates(instant, got):
        assert not oracle(t, zones, window, p), t


@PROPS
@given(
    now=instants,
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    zones=zone_lists,
    periods=st.lists(quiet_periods, max_size=2),
)
def test_next_allowed_is_monotonic(
    now: datetime, later: timedelta, zones: list[ZoneInfo], periods: list[QuietPeriod]
) -> None:
    p = Preferences(no_contact=periods)
    try:
        a = next_allowed(now, zones, US.window, p)
        b = next_allowed(now + later, zones, US.window, p)
    except NoAllowedTime:
        return
    assert a <= b
    assert b >= now + later


us_zone_lists = st.lists(st.sampled_from(US_ALL), min_size=1, max_size=7, unique=True)


@PROPS
@given(day=st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)), zones=us_zone_lists)
def test_us_zones_always_overlap(day: date, zones: list[ZoneInfo]) -> None:
    got = next_allowed(datetime.combine(day, time(0), UTC), zones, US.window)
    assert got - datetime.combine(day, time(0), UTC) < timedelta(days=1)
    for zone in zones:
        assert time(8) <= got.astimezone(zone).time() <= time(20, 45)

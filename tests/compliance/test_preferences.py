"""Borrower-stated contact preferences: 晚上别发, 上班时间别发, "not after 6pm"."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.compliance.preferences import extract, merge, normalize
from bot.compliance.window import Preferences, QuietPeriod, next_allowed
from policy.pack import load_packs

WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})
EVENING = (time(18), time(8), None)
WORK = (time(9), time(18), WEEKDAYS)
WEEKEND_ALL_DAY = (time(0), time(0), WEEKEND)
NOON = (time(12), time(14), None)
MORNING = (time(8), time(10), None)

Key = tuple[time, time, frozenset[int] | None]


def after(h: int, m: int = 0) -> Key:
    return (time(h, m), time(8), None)


def before(h: int, m: int = 0) -> Key:
    return (time(0), time(h, m), None)


def keys(text: str) -> list[Key]:
    return [p.key for p in extract(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # evenings
        ("晚上别发", [EVENING]),
        ("晚上不要发短信", [EVENING]),
        ("晚上不要再发了", [EVENING]),
        ("晚上的时候别发", [EVENING]),
        ("晚上不方便", [EVENING]),
        ("夜里别打扰我", [EVENING]),
        ("别晚上发", [EVENING]),
        ("不要在晚上给我发短信", [EVENING]),
        ("晚上別發", [EVENING]),  # traditional
        ("晚 上 别 发", [EVENING]),  # spacing trick
        ("半夜别发", [(time(22), time(8), None)]),
        # working hours, Monday to Friday
        ("上班时间别发", [WORK]),
        ("工作时间别打扰", [WORK]),
        ("上班时间請勿打擾", [WORK]),
        ("上班的时候不方便接", [WORK]),
        ("别在上班时间发", [WORK]),
        ("我上班期间不能看手机,别发", [WORK]),
        ("工作日别发", [(time(0), time(0), WEEKDAYS)]),
        # noon, morning, afternoon
        ("中午别发", [NOON]),
        ("午休时间不要打扰", [NOON]),
        ("早上别发", [MORNING]),
        ("上午不要发", [(time(8), time(12), None)]),
        ("下午别打电话", [(time(12), time(18), None)]),
        # weekends
        ("周末别发", [WEEKEND_ALL_DAY]),
        ("周末不要联系我", [WEEKEND_ALL_DAY]),
        ("週末別發", [WEEKEND_ALL_DAY]),
        ("双休日别打扰", [WEEKEND_ALL_DAY]),
        ("周六周日别发", [WEEKEND_ALL_DAY]),
        ("我不想晚上被打扰", [EVENING]),
        # from an hour to the next morning
        ("8点以后别发", [after(20)]),
        ("九点后别发", [after(21)]),
        ("晚上9点以后不要发短信", [after(21)]),  # only the hour, not also "evening"
        ("晚上9點以後不要發短信", [after(21)]),
        ("晚上八点半以后别发", [after(20, 30)]),
        ("晚8点后别打扰", [after(20)]),
        ("下午5点以后别打电话", [after(17)]),
        ("18点以后别发", [after(18)]),
        ("20:00以后不要发", [after(20)]),
        ("８点以后别发", [after(20)]),  # full-width digit
        ("十点之后不要发了", [after(22)]),
        ("别在8点以后发", [after(20)]),
        # before an hour
        ("别在10点前发", [before(10)]),
        ("十点前别发消息", [before(10)]),
        ("早上9点之前不要打扰", [before(9)]),
        ("不要在9点半以前发", [before(9, 30)]),
        # several at once
        ("晚上和周末都别发", [WEEKEND_ALL_DAY, EVENING]),
        ("上班时间和晚上别发", [WORK, EVENING]),
        ("中午别发,晚上9点以后也别发", [after(21), NOON]),
        # English
        ("don't text me at work", [WORK]),
        ("Don’t text me at work please", [WORK]),
        ("please do not message me during working hours", [WORK]),
        ("not after 6pm", [after(18)]),
        ("NOT AFTER 6 PM", [after(18)]),
        ("no texts after 9", [after(21)]),
        ("don't text me after 8:30pm", [after(20, 30)]),
        ("no texts on weekends", [WEEKEND_ALL_DAY]),
        ("not on the weekend", [WEEKEND_ALL_DAY]),
        ("not before 10am", [before(10)]),
        ("don't call me in the evening", [EVENING]),
        ("no texts at night", [EVENING]),
    ],
)
def test_extract(text: str, expected: list[Key]) -> None:
    assert keys(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "好的",
        "我晚上还钱",
        "晚上还你",
        "不要紧,晚上还",
        "今天上班,明天还",
        "周末我去银行还款",
        "早上好",
        "早上好,我下午还",
        "还款晚了不要催",  # 晚 alone is "late", not "evening"
        "别发了",  # a stop request (the NLU's job), not a time
        "退订",
        "8点还",
        "我8点以后有空",
        "I'm not at work today",
        "I will pay after 6pm",
        "ok",
    ],
)
def test_no_preference(text: str) -> None:
    assert extract(text) == []


def test_labels_and_source_text() -> None:
    [p] = extract("  晚上別發  ")
    assert p.label == "evening"
    assert p.source_text == "晚上別發"  # what the borrower wrote, for the evidence export
    [q] = extract("九点后别发")
    assert q.label == "after 21:00"
    assert extract("x" * 2000 + "晚上别发")[0].source_text == "x" * 500


def test_normalize() -> None:
    assert normalize("晚 上 別 發 ＳＭＳ") == "晚上别发sms"
    assert normalize("Don’t  Text me") == "donttextme"


def test_no_duplicates_within_one_reply() -> None:
    assert keys("晚上别发,晚上不要发,夜里也别发") == [EVENING]


def test_merge() -> None:
    first = merge(None, extract("晚上别发"))
    assert [p.key for p in first.no_contact] == [EVENING]
    again = merge(first, extract("晚上不要发短信"))
    assert again == first  # the same period is not added twice; the first wording is kept
    both = merge(again, extract("周末别发"))
    assert [p.key for p in both.no_contact] == [EVENING, WEEKEND_ALL_DAY]
    assert merge(both, []) == both
    assert merge(None, []) == Preferences()
    # Same times on other days are a different period.
    fri = QuietPeriod(start=time(18), end=time(8), weekdays=frozenset({4}), label="friday")
    assert len(merge(both, [fri]).no_contact) == 3


def test_extracted_preference_defers_a_reminder() -> None:
    cn = load_packs().packs["cn"]
    sh = ZoneInfo("Asia/Shanghai")
    prefs = merge(None, extract("上班时间别发短信,周末也别发"))
    wednesday_10 = datetime(2026, 5, 6, 10, tzinfo=sh)
    assert next_allowed(wednesday_10, [sh], cn.window, prefs) == datetime(2026, 5, 6, 18, tzinfo=sh)
    saturday_10 = datetime(2026, 5, 9, 10, tzinfo=sh)
    assert next_allowed(saturday_10, [sh], cn.window, prefs) == datetime(2026, 5, 11, 8, tzinfo=sh)
    assert next_allowed(saturday_10, [sh], cn.window, prefs).tzinfo is UTC


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_extract_never_fails(text: str) -> None:
    for p in extract(text):
        assert isinstance(p, QuietPeriod)
        assert p.source_text == text.strip()[:500]


def test_preferences_survive_json() -> None:
    p = merge(None, extract("上班时间和晚上别发,周末也别发"))
    assert [q.label for q in p.no_contact] == ["working hours", "weekend", "evening"]
    back = Preferences.model_validate_json(p.model_dump_json())
    assert back == p and hash(back) == hash(p)

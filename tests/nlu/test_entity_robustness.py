"""Known failure kinds of the entity readers on unseen replies, one test per kind.

The examples are invented for these tests (never taken from an evaluation set). The clock is
Wednesday 2026-12-02 10:00 Asia/Shanghai, as in DATA.md.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from intents import Intent
from intents import entities as ent
from intents.dates import MAX_OFFSET_DAYS

D = date
TODAY = D(2026, 12, 2)
PROMISE = frozenset({Intent.PROMISE_TO_PAY})


def _resolved(text: str, intents: frozenset[Intent] = PROMISE) -> Any:
    """The entities of ``text`` when its intents are known (the readers alone, no model)."""
    entities, _spans = ent.resolve(ent.read(text), intents, TODAY)
    return entities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("晚上还你们", D(2026, 12, 2)),
        ("今晚转过去", D(2026, 12, 2)),
        ("下午三点前还上", D(2026, 12, 2)),
        ("中午就还", D(2026, 12, 2)),
        ("傍晚打过去", D(2026, 12, 2)),
        ("十点钟还", D(2026, 12, 2)),
        ("晚上7点半前转", D(2026, 12, 2)),
        ("明早还", D(2026, 12, 3)),
        ("明天晚上还", D(2026, 12, 3)),  # the day named wins over the time of day
        ("周五下午还", D(2026, 12, 4)),
        ("will pay tonight", D(2026, 12, 2)),
        ("pay this evening ok", D(2026, 12, 2)),
        ("will pay tmr", D(2026, 12, 3)),
        ("pay u tomorrow", D(2026, 12, 3)),
        ("明天还 tmrw for sure", D(2026, 12, 3)),
        ("day after tomorrow", D(2026, 12, 4)),
        ("next friday", D(2026, 12, 11)),
    ],
)
def test_times_of_day_and_english_days_resolve(text: str, expected: date) -> None:
    e = _resolved(text)
    assert e.date == expected, e
    assert e.date_range is None and e.unresolved == ()


@pytest.mark.parametrize(
    "text", ["晚上好", "我晚上还要上班没钱", "中午吃饭了吗", "多还一点", "晚一点还", "下午有空再说"]
)
def test_a_time_of_day_names_no_pay_day_unless_paying(text: str) -> None:
    e = _resolved(text, frozenset({Intent.PROMISE_TO_PAY, Intent.HARDSHIP}))
    assert e.date is None and e.date_range is None, e


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("双十一还", D(2027, 11, 11)),  # already past this year: next year's
        ("双11之前一定还", D(2027, 11, 11)),
        ("双十二还", D(2026, 12, 12)),
        ("双12发了钱就还", D(2026, 12, 12)),
        ("国庆还", D(2027, 10, 1)),
        ("国庆节前还清", D(2027, 10, 1)),
        ("元旦还", D(2027, 1, 1)),
        ("劳动节还", D(2027, 5, 1)),
        ("五一还", D(2027, 5, 1)),
        ("圣诞节还", D(2026, 12, 25)),
    ],
)
def test_solar_holidays_resolve_to_the_next_one(text: str, expected: date) -> None:
    e = _resolved(text)
    assert e.date == expected, e
    assert e.amount is None  # 双11 and 五一 are not 11 or 51 yuan


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("国庆后还", "国庆后"),
        ("节后还", "节后"),
        ("春节前还", "春节前"),
        ("过年后再说", "过年后"),
        ("中秋还", "中秋"),
        ("端午节之后还", "端午节之后"),
        ("元宵节前后还", "元宵节前"),
    ],
)
def test_lunar_and_after_holiday_phrases_stay_unresolved(text: str, phrase: str) -> None:
    e = _resolved(text)
    assert e.date is None and e.date_range is None
    assert e.unresolved == (phrase,)


@pytest.mark.parametrize(
    "text",
    ["五一二块", "二十一号还", "十一号还", "十一点前还", "还十一块"],
)
def test_numbers_that_look_like_holidays_are_not_holidays(text: str) -> None:
    e = _resolved(text)
    assert e.date is None or e.date not in (D(2027, 5, 1), D(2027, 10, 1)), e


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("尾号1234的卡昨天扣了", None),
        ("卡号后四位5678，还了2000", 2000),
        ("尾号8899那张卡还500", 500),
        ("有事打400-800-1234", None),
        ("座机0755-1234567", None),
        ("还500-1000", 500),  # one hyphen between figures is a range of money
        ("我电话13812345678明天还", None),
        ("95588说扣款了", None),
        ("打10086问了", None),
        ("还96000", 96000),  # a round figure is money even where hotlines start
        ("转了95588元", 95588),  # with a currency word, too
        ("12.5还", None),
        ("12月5号还", None),
        ("3月15号还八百", 800),
    ],
)
def test_identifiers_and_dates_are_never_amounts(text: str, amount: float | None) -> None:
    e = _resolved(text, frozenset({Intent.PROMISE_TO_PAY, Intent.ALREADY_PAID}))
    assert e.amount == amount, e


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("先还1w2", 12000),
        ("先还1W2", 12000),
        ("先还1万2", 12000),
        ("先还3千5", 3500),
        ("先还2k", 2000),
        ("先还2K", 2000),
        ("先还2k5", 2500),
        ("先还1.5w", 15000),
        ("先还五千五", 5500),
        ("先还两万", 20000),
    ],
)
def test_shorthand_amounts(understand: Any, text: str, amount: float) -> None:
    assert understand(text).entities.amount == amount


@pytest.mark.parametrize(
    "text",
    [
        "明天还" + "9" * 400,
        "还" + "9" * 400 + "元",
        "一亿周后还",
        "99999999天后还",
        "99999999周后还",
        "过99999999天还",
        "99999999天内还",
        "下个月99999999号还",
        "10000000000000000000000元明天还",
        "还一亿",
        "还20000000元",
        "in 999999999 days",
        "1e400元",
    ],
)
def test_every_number_is_bounded(text: str) -> None:
    e = _resolved(text)
    assert e.amount is None or 0 < e.amount <= ent.MAX_AMOUNT
    for d in [e.date, *(e.date_range or ())]:
        assert d is None or abs((d - TODAY).days) <= MAX_OFFSET_DAYS, (text, e)
    # An absurd offset is kept for a person to read, never silently a default date.
    if "天后" in text or "周后" in text or "号" in text:
        assert e.date is None and e.unresolved, (text, e)


def test_the_biggest_amount_still_read() -> None:
    assert _resolved("还1000万").amount == 10_000_000


PAID = frozenset({Intent.ALREADY_PAID})
PLAN = frozenset({Intent.REQUEST_PLAN})


@pytest.mark.parametrize(
    ("text", "intents", "expected"),
    [
        ("will pay by the 10th", PROMISE, D(2026, 12, 10)),
        ("until the 20th ok?", PLAN | PROMISE, D(2026, 12, 20)),
        ("paid on the 1st", PAID, D(2026, 12, 1)),
        ("the 31st", PROMISE, D(2026, 12, 31)),
    ],
)
def test_english_days_of_the_month_are_dates_never_amounts(
    text: str, intents: frozenset[Intent], expected: date
) -> None:
    got = _resolved(text, intents)
    assert got.date == expected
    assert got.amount is None


@pytest.mark.parametrize("text", ["生意亏了十几万", "每天就挣几十块钱", "还了几百", "几千块我先还"])
def test_a_guessed_figure_is_no_amount(text: str) -> None:
    assert _resolved(text, PAID | PROMISE).amount is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("can i split it into 3 payments?", 3),
        ("pay in four instalments", 4),
        ("in 6 monthly installments please", 6),
        ("pay in 1 payment", None),
    ],
)
def test_english_installments(text: str, expected: int | None) -> None:
    assert _resolved(text, PLAN).installments == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'll transfer it by the end of the month", (D(2026, 12, 25), D(2026, 12, 31))),
        ("this week for sure", (D(2026, 12, 2), D(2026, 12, 6))),
        ("this weekend ok", (D(2026, 12, 5), D(2026, 12, 6))),
    ],
)
def test_english_ranges(text: str, expected: tuple[date, date]) -> None:
    assert _resolved(text).date_range == expected


@pytest.mark.parametrize(
    ("text", "date_", "range_"),
    [
        ("xia zhou wu huan", D(2026, 12, 11), None),
        ("guo liang tian huan", None, (D(2026, 12, 3), D(2026, 12, 5))),
        ("yue di huan qing", None, (D(2026, 12, 25), D(2026, 12, 31))),
        ("过两日就还", None, (D(2026, 12, 3), D(2026, 12, 5))),
    ],
)
def test_pinyin_and_cantonese_time_words(
    understand: Any, text: str, date_: date | None, range_: tuple[date, date] | None
) -> None:
    got = understand(text).entities
    assert (got.date, got.date_range) == (date_, range_)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-20还", D(2026, 12, 20)),
        ("2026年12月20日还", D(2026, 12, 20)),
        ("2026/02/30还", None),
    ],
)
def test_a_date_written_in_full_is_a_date_and_no_amount(text: str, expected: date | None) -> None:
    got = _resolved(text)
    assert got.date == expected
    assert got.amount is None


@pytest.mark.parametrize(
    ("text", "doubt"),
    [("is this a scam", "scam"), ("shi bu shi zha pian", "诈骗"), ("pian zi ba", "骗子")],
)
def test_doubt_in_english_and_pinyin(understand: Any, text: str, doubt: str) -> None:
    assert understand(text).entities.doubt == doubt

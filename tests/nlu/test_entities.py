"""Entity readings, table-driven, against now = Wednesday 2026-12-02 10:00 Asia/Shanghai."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from intents import Understanding

D = date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天还", D(2026, 12, 2)),
        ("今晚还", D(2026, 12, 2)),
        ("明天还", D(2026, 12, 3)),
        ("后天还", D(2026, 12, 4)),
        ("大后天还", D(2026, 12, 5)),
        ("周五还", D(2026, 12, 4)),
        ("这周五还", D(2026, 12, 4)),
        ("星期五还", D(2026, 12, 4)),
        ("礼拜五还", D(2026, 12, 4)),
        ("周三晚上还", D(2026, 12, 2)),  # today counts
        ("周一还", D(2026, 12, 7)),  # already past this week: the next one
        ("下周一还", D(2026, 12, 7)),
        ("下周五还", D(2026, 12, 11)),
        ("15号还", D(2026, 12, 15)),
        ("1号还", D(2027, 1, 1)),  # future tense, day already past: next month
        ("12月5号还", D(2026, 12, 5)),
        ("12.5还", D(2026, 12, 5)),
        ("1月3号还", D(2027, 1, 3)),
        ("下个月10号还", D(2027, 1, 10)),
        ("元旦还", D(2027, 1, 1)),
        ("三天后还", D(2026, 12, 5)),
        ("3天后还", D(2026, 12, 5)),
        ("今天还不上 明天一定还", D(2026, 12, 3)),  # not the day they cannot pay
        # a day put off in other words (a borrower's trial: these promised today)
        ("今天没空，明天还", D(2026, 12, 3)),
        ("今天来不及了明天还你们", D(2026, 12, 3)),
        ("今天有事 周五转", D(2026, 12, 4)),
        ("今天太忙了后天还吧", D(2026, 12, 4)),
        ("今天先不还了明天还", D(2026, 12, 3)),
        ("我周五发工资，周六还你们", D(2026, 12, 5)),  # the pay day is not the day paid
        ("周五发工资，当天就还", D(2026, 12, 4)),  # ... unless it is
        ("下个月10号发工资那天还", D(2027, 1, 10)),
    ],
)
def test_promise_dates(understand, text: str, expected: date) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.entities.date == expected, u.explain.spans
    assert u.entities.date_range is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天能不能先还一半", D(2026, 12, 2)),  # 能不能 asks; it does not put today off
        ("今天忙完就还", D(2026, 12, 2)),
        ("明天下班有事回来就还", D(2026, 12, 3)),  # busy later that day: still the day
    ],
)
def test_a_day_not_put_off_stays(understand, text: str, expected: date) -> None:  # type: ignore[no-untyped-def]
    assert understand(text).entities.date == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16号", D(2026, 12, 16)),
        ("18号吧", D(2026, 12, 18)),
        ("25号", D(2026, 12, 25)),
        ("明天吧", D(2026, 12, 3)),
        ("下周一之前", D(2026, 12, 7)),
        ("大概15号左右", D(2026, 12, 15)),
        ("16号或者18号", D(2026, 12, 16)),
        ("晚上", D(2026, 12, 2)),  # a time of day alone: today
        ("下午吧", D(2026, 12, 2)),
        ("by the 20th", D(2026, 12, 20)),
        # from a second borrower's trial: Chinese numerals read as a stop, fillers, two days
        ("十八号吧", D(2026, 12, 18)),
        ("二十号吧。", D(2026, 12, 20)),
        ("那就16号", D(2026, 12, 16)),
        ("后天上午", D(2026, 12, 4)),
        ("马上", D(2026, 12, 2)),
        ("一会儿", D(2026, 12, 2)),
        ("今天不行，明天吧", D(2026, 12, 3)),
        ("16号有事，改到18号吧", D(2026, 12, 18)),
        ("明天还不了了，推到周五", D(2026, 12, 4)),
        # a third trial: a day corrected after the confirmation, or said with thanks
        ("不是16号，是18号", D(2026, 12, 18)),
        ("18号，不是16号", D(2026, 12, 18)),
        ("不对，是18号", D(2026, 12, 18)),
        ("打错字了，22号", D(2026, 12, 22)),  # a typo, not a wrong number
        ("改成18号", D(2026, 12, 18)),
        ("不是明天，是后天", D(2026, 12, 4)),
        ("好的16号", D(2026, 12, 16)),
        ("16号，谢谢", D(2026, 12, 16)),
    ],
)
def test_a_reply_that_is_only_a_day_promises_it(understand, text: str, expected: date) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.intent == "promise_to_pay", u.explain
    assert u.entities.date == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16号?", D(2026, 12, 16)),
        ("16号吗", D(2026, 12, 16)),
        ("16号可以吗", D(2026, 12, 16)),
        ("28号行不行", D(2026, 12, 28)),
        ("明天吧?", D(2026, 12, 3)),
    ],
)
def test_a_day_offered_as_a_question_asks_for_it(understand, text: str, expected: date) -> None:  # type: ignore[no-untyped-def]
    """DATA.md: a date offered as a question is [request_plan, promise_to_pay] (the flow
    accepts it when it has just asked which day)."""
    u: Understanding = understand(text)
    assert [s.name for s in u.intents] == ["request_plan", "promise_to_pay"], u.explain
    assert u.entities.date == expected


@pytest.mark.parametrize("text", ["明天还不上", "今天先不还", "20号不行", "明天没时间"])
def test_a_day_put_off_alone_is_no_pay_day(understand, text: str) -> None:  # type: ignore[no-untyped-def]
    """A third trial: each was confirmed as a promise for the very day put off."""
    assert understand(text).entities.date is None


@pytest.mark.parametrize(
    "text",
    [
        "16号发工资",  # a verb: not only a day (the model reads it)
        "16号不行",  # one day, put off: no day offered
        "晚上好",
        "不是16号",  # a day denied, none offered
        "打错了 16号",  # a wrong number stays one
        "退订 16号",  # an opt-out is never only a day
        "1",
    ],
)
def test_not_a_bare_day(understand, text: str) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert not any(h.rule == "promise.bare_date" for h in u.explain.rules), u.explain


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("周五就扣了", D(2026, 11, 27)),  # past tense looks back
        ("上周五还的", D(2026, 11, 27)),
        ("昨天还了", D(2026, 12, 1)),
        ("前天就还了", D(2026, 11, 30)),
        ("1号还了", D(2026, 12, 1)),
        ("28号就还了啊", D(2026, 11, 28)),
    ],
)
def test_payment_dates_look_back(understand, text: str, expected: date) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.intent == "already_paid"
    assert u.entities.date == expected


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("这几天就还", D(2026, 12, 2), D(2026, 12, 5)),
        ("过两天还", D(2026, 12, 3), D(2026, 12, 5)),
        ("周末还", D(2026, 12, 5), D(2026, 12, 6)),
        ("这周内还清", D(2026, 12, 2), D(2026, 12, 6)),
        ("一周内还", D(2026, 12, 2), D(2026, 12, 9)),
        ("下周还", D(2026, 12, 7), D(2026, 12, 13)),
        ("下个月还", D(2027, 1, 1), D(2027, 1, 31)),
        ("月底还", D(2026, 12, 25), D(2026, 12, 31)),
        ("3天内还", D(2026, 12, 2), D(2026, 12, 5)),
        ("下月初还", D(2027, 1, 1), D(2027, 1, 5)),
    ],
)
def test_date_ranges(understand, text: str, start: date, end: date) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.entities.date_range == (start, end)
    assert u.entities.date is None


@pytest.mark.parametrize("text", ["发工资后还", "等有钱了就还", "年后还"])
def test_unresolvable_times_keep_the_phrase(understand, text: str) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.intent == "promise_to_pay"
    assert u.entities.date is None and u.entities.date_range is None
    assert u.entities.unresolved


def test_month_end_rolls_over_year(understand) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(
        "下个月10号还", now=datetime.fromisoformat("2026-12-31T23:00:00+08:00")
    )
    assert u.entities.date == D(2027, 1, 10)


def test_time_zone_decides_today(nlu) -> None:  # type: ignore[no-untyped-def]
    # 2026-12-02 20:00 UTC is already 12-03 in Shanghai but still 12-02 in New York.
    now = datetime.fromisoformat("2026-12-02T20:00:00+00:00")
    assert nlu.understand("明天还", now=now, tz="Asia/Shanghai").entities.date == D(2026, 12, 4)
    assert nlu.understand("明天还", now=now, tz="America/New_York").entities.date == D(2026, 12, 3)


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("明天还500", 500),
        ("先还五百", 500),
        ("下周还一千二", 1200),
        ("1.2万月底一次性还清", 12000),
        ("今天先还两千块", 2000),
        ("先还3k", 3000),
        ("贰仟元周五转账", 2000),
        ("¥1,500 今晚还", 1500),
        ("1500元明天打过去", 1500),
        ("昨天还了八百", 800),
        ("刚转了1000，注意查收", 1000),
        ("500还不上，先还300", 300),  # the sum that cannot be paid is not the offer
        ("先还一千行不行", 1000),  # 行不行 asks; it refuses nothing
        ("每月还八百方便不方便", 800),
        ("拿不出3200，先还1000行不行", 1000),  # the sum out of reach is not the offer
    ],
)
def test_amounts(understand, text: str, amount: float) -> None:  # type: ignore[no-untyped-def]
    assert understand(text).entities.amount == amount


@pytest.mark.parametrize(
    "text",
    [
        "回复：【XX金融】张先生，您的借款3200元已逾期5天，请及时还款。明天还",  # quoted reminder
        "欠你们3200我知道，明天还",  # the debt quoted back
        "先还一半",  # relative
        "全部还清",
        "逾期5天了明天还",  # days, not money
        "明天下午3点前还",  # a time, not money
        "分3期行吗",  # installments, not money
        "8000一次性还不上，能不能分6期",  # what cannot be paid (a borrower's trial)
        "3000块实在拿不出来",
        "一次还不了8000，分6期行吗",
        "没有8000，能分6期吗",
        "8000块我一下子拿不出来，分6个月还行吗",
        "15或16号",  # the first of two days, not money
    ],
)
def test_not_amounts(understand, text: str) -> None:  # type: ignore[no-untyped-def]
    assert understand(text).entities.amount is None


@pytest.mark.parametrize(
    ("text", "n"),
    [("分三期可以吗", 3), ("能分6期吗", 6), ("分12个月还行吗", 12), ("分成十期慢慢还", 10)],
)
def test_installments(understand, text: str, n: int) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.entities.installments == n
    assert u.intent == "request_plan"


@pytest.mark.parametrize(
    ("text", "doubt"),
    [
        ("你们这是诈骗短信吧", "诈骗"),
        ("我看你们就是一帮骗子", "骗子"),
        ("这条短信是假的吧", "是假的吧"),
        ("你们到底正规吗", "正规吗"),
        ("怎么证明你们真是银行的", "怎么证明你们"),
        ("冒充金融公司的吧", "冒充"),
        ("我知道你们不是骗子，周五还", None),
        ("明天还", None),
        ("3200是真的吗，怎么这么多", None),  # doubt about the amount, not about the sender
        ("请问还款渠道正规吗", "正规吗"),
    ],
)
def test_doubt_that_the_sender_is_genuine(understand, text: str, doubt: str | None) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.entities.doubt == doubt


@pytest.mark.parametrize(
    ("text", "unresolved"),
    [
        ("一亿周后还", ["一亿周后"]),
        ("过一亿天还", ["过一亿天"]),
        ("一亿天内还", ["一亿天内"]),
        ("我还" + "9" * 400 + "元", []),
        ("明天还\udfff", []),
        ("\ud800", []),
    ],
)
def test_absurd_numbers_and_lone_surrogates_are_read_not_raised(
    understand: Any, text: str, unresolved: list[str]
) -> None:
    u = understand(text)
    assert u.entities.amount is None
    assert list(u.entities.unresolved) == unresolved
    assert "\ufffd" in u.text or u.text == text


def test_a_reasonable_offset_still_resolves(understand: Any) -> None:
    assert understand("两周后还").entities.date == date(2026, 12, 16)

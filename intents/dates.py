"""Reads the pay date out of a reply and resolves it against the borrower's today.

Each recogniser yields a :class:`TimeExpr` whose ``resolve(today, past)`` gives a date or a
range. Whether an ambiguous weekday or day-of-month looks forward or back is decided by the
caller (from the intents: 周五就扣了 is past, 周五还 is future), so the readers stay pure.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from intents.numbers import CN_NUMERAL_CHARS, parse_number

Resolved = date | tuple[date, date] | None
Resolver = Callable[[date, bool], Resolved]

_N = rf"(?:\d{{1,2}}|[{CN_NUMERAL_CHARS}]{{1,3}})"
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6}
_WEEKDAYS.update({str(i + 1): i for i in range(7)})


@dataclass(frozen=True)
class TimeExpr:
    text: str
    start: int
    end: int
    resolve: Resolver  # None when the phrase has no calendar meaning (发工资后)
    inherent_past: bool | None = None  # 昨天 is past whatever the verb says


def _num(s: str) -> int | None:
    v = parse_number(s)
    return int(v) if v is not None and v == int(v) else None


def _add_months(d: date, months: int, day: int = 1) -> date | None:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    if day > calendar.monthrange(year, month)[1]:
        return None
    return date(year, month, day)


def _month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def _week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _weekday(which: str, wd: int) -> Resolver:
    def resolve(today: date, past: bool) -> Resolved:
        monday = _week_start(today)
        if which in ("下", "下个"):
            return monday + timedelta(days=7 + wd)
        if which in ("下下", "下下个"):
            return monday + timedelta(days=14 + wd)
        if which in ("上", "上个"):
            return monday - timedelta(days=7 - wd)
        delta = (wd - today.weekday()) % 7
        return today - timedelta(days=(7 - delta) % 7) if past else today + timedelta(days=delta)

    return resolve


def _day_of_month(day: int) -> Resolver:
    def resolve(today: date, past: bool) -> Resolved:
        if past:
            if day <= today.day:
                return today.replace(day=day)
            return _add_months(today, -1, day)
        if day >= today.day:
            return _add_months(today, 0, day)
        return _add_months(today, 1, day)

    return resolve


def _month_day(month: int, day: int) -> Resolver:
    def resolve(today: date, past: bool) -> Resolved:
        try:
            d = date(today.year, month, day)
        except ValueError:
            return None
        if past and d > today:
            return d.replace(year=today.year - 1)
        if not past and d < today:
            return d.replace(year=today.year + 1)
        return d

    return resolve


def _unresolved(_today: date, _past: bool) -> Resolved:
    return None


# A day further than this from today is not a pay date anyone schedules (一亿周后, 过一亿天):
# the phrase is kept unresolved (for a person to read) instead of overflowing the calendar.
MAX_OFFSET_DAYS = 366


def _offset(days: int) -> Resolver:
    if abs(days) > MAX_OFFSET_DAYS:
        return _unresolved
    return lambda today, _past: today + timedelta(days=days)


def _span(a: int, b: int) -> Resolver:
    if max(abs(a), abs(b)) > MAX_OFFSET_DAYS:
        return _unresolved
    return lambda today, _past: (today + timedelta(days=a), today + timedelta(days=b))


def _next_month(day: int | None, part: str | None) -> Resolver:
    def resolve(today: date, _past: bool) -> Resolved:
        first = _add_months(today, 1)
        assert first is not None
        if day is not None:
            return _add_months(today, 1, day)
        return _month_part(first, part)

    return resolve


def _last_month(day: int) -> Resolver:
    return lambda today, _past: _add_months(today, -1, day)


def _month_part(first: date, part: str | None) -> tuple[date, date]:
    end = _month_end(first)
    if part == "初":
        return first, first.replace(day=5)
    if part == "中":
        return first.replace(day=10), first.replace(day=20)
    if part in ("底", "末"):
        return first.replace(day=25), end
    return first, end


def _this_month_part(part: str) -> Resolver:
    def resolve(today: date, _past: bool) -> Resolved:
        first = today.replace(day=1)
        start, end = _month_part(first, part)
        if today > end:  # 月初 said on the 20th means next month's
            nxt = _add_months(today, 1)
            assert nxt is not None
            return _month_part(nxt, part)
        return max(start, today), end

    return resolve


def _weekend(which: str) -> Resolver:
    def resolve(today: date, _past: bool) -> Resolved:
        sat = _week_start(today) + timedelta(days=5 + (7 if which.startswith("下") else 0))
        return max(sat, today), sat + timedelta(days=1)

    return resolve


def _this_week(today: date, _past: bool) -> Resolved:
    return today, _week_start(today) + timedelta(days=6)


def _next_week(today: date, _past: bool) -> Resolved:
    monday = _week_start(today) + timedelta(days=7)
    return monday, monday + timedelta(days=6)


def _new_year(today: date, past: bool) -> Resolved:
    d = date(today.year, 1, 1)
    return d if past or today == d else date(today.year + 1, 1, 1)


_WEEK = r"(?:周|星期|礼拜)"
_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Resolver | None], bool | None]] = [
    # (pattern, builder from the match, inherent tense)
    (re.compile(r"大后天"), lambda m: _offset(3), False),
    (re.compile(r"大前天"), lambda m: _offset(-3), True),
    (re.compile(r"今天|今日|今儿|今晚|今早|今天晚上|当天"), lambda m: _offset(0), None),
    (re.compile(r"明天|明日|明儿|明早|明晚|明个"), lambda m: _offset(1), False),
    (re.compile(r"后天"), lambda m: _offset(2), False),
    (re.compile(r"昨天|昨日|昨儿|昨晚"), lambda m: _offset(-1), True),
    (re.compile(r"前天"), lambda m: _offset(-2), True),
    (
        re.compile(rf"({_N})\s*(?:天|日)\s*(?:后|之后|以后)"),
        lambda m: _offset(n) if (n := _num(m.group(1))) is not None and n <= 90 else None,
        False,
    ),
    (
        re.compile(rf"({_N}|一个?)\s*(?:周|星期|礼拜)\s*(?:后|之后|以后)"),
        lambda m: _offset(7 * (_num(m.group(1).rstrip("个")) or 1)),
        False,
    ),
    (
        re.compile(rf"(?:({_N})\s*(?:天|日)|一个?(?:周|星期|礼拜))\s*(?:内|之内|以内)"),
        lambda m: _span(0, _num(m.group(1)) or 0) if m.group(1) else _span(0, 7),
        False,
    ),
    (re.compile(r"过\s*(?:两|几|些|一两)\s*天"), lambda m: _span(1, 3), False),
    (
        re.compile(rf"过\s*({_N})\s*天"),
        lambda m: _offset(n) if (n := _num(m.group(1))) is not None else None,
        False,
    ),
    (re.compile(r"这(?:两|几|些)天|近(?:两|几)天|最近(?:两|几)天"), lambda m: _span(0, 3), False),
    (re.compile(r"(下个?|这个?|本)?周末"), lambda m: _weekend(m.group(1) or ""), False),
    (
        re.compile(rf"(下下个?|下个?|上个?|这个?|本)?{_WEEK}\s*([一二三四五六日天七1-7])"),
        lambda m: _weekday(m.group(1) or "", _WEEKDAYS[m.group(2)]),
        None,
    ),
    (re.compile(r"下个?(?:周|星期|礼拜)"), lambda m: _next_week, False),
    (re.compile(r"(?:这|本)个?(?:周|星期|礼拜)(?:内|之内)?"), lambda m: _this_week, False),
    (
        re.compile(rf"下个?月\s*({_N})\s*(?:号|日)"),
        lambda m: _next_month(n, None) if (n := _num(m.group(1))) and 1 <= n <= 31 else None,
        False,
    ),
    (re.compile(r"下个?月\s*(初|中|底|末)?"), lambda m: _next_month(None, m.group(1)), False),
    (
        re.compile(rf"上个?月\s*({_N})\s*(?:号|日)"),
        lambda m: _last_month(n) if (n := _num(m.group(1))) and 1 <= n <= 31 else None,
        True,
    ),
    (re.compile(r"(?:这个?|本)?月(初|中|底|末)"), lambda m: _this_month_part(m.group(1)), None),
    (
        re.compile(rf"({_N})\s*月\s*({_N})\s*(?:号|日)?"),
        lambda m: (
            _month_day(mo, d)
            if (mo := _num(m.group(1)))
            and (d := _num(m.group(2)))
            and 1 <= mo <= 12
            and 1 <= d <= 31
            else None
        ),
        None,
    ),
    (
        re.compile(r"(?<![\d.])(1[0-2]|0?[1-9])[./](3[01]|[12]\d|0?[1-9])(?![\d.万千百kw元块%])"),
        lambda m: _month_day(int(m.group(1)), int(m.group(2))),
        None,
    ),
    (
        re.compile(rf"(?<![\d月])({_N})\s*(?:号|日|hao)(?!\s*(?:线|楼|门|床|房|机))"),
        lambda m: _day_of_month(n) if (n := _num(m.group(1))) and 1 <= n <= 31 else None,
        None,
    ),
    (re.compile(r"元旦"), lambda m: _new_year, None),
]

# Time phrases no calendar resolves; kept raw so a human or the flow can still use them.
_UNRESOLVED = re.compile(
    r"发(?:了)?工资|工资(?:到|下来|发)|发薪|开工资|领工资|等有钱|有钱(?:了|就|再)|手头宽裕|"
    r"回款|年后|过年|年前|春节|年底|过段时间|过一阵|过阵子|缓过来|周转过来|下次"
)


def find_time_expressions(text: str) -> Iterator[TimeExpr]:
    """Every time phrase in ``text``, longest match first where two overlap."""
    taken: list[tuple[int, int]] = []
    found: list[TimeExpr] = []
    for pattern, build, tense in _RULES:
        for m in pattern.finditer(text):
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                continue
            resolver = build(m)
            if resolver is None:
                continue
            taken.append((s, e))
            found.append(TimeExpr(m.group(), s, e, resolver, tense))
    for m in _UNRESOLVED.finditer(text):
        s, e = m.span()
        if not any(s < te and ts < e for ts, te in taken):
            found.append(TimeExpr(m.group(), s, e, _unresolved, None))
    yield from sorted(found, key=lambda t: t.start)

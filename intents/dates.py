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

# A count or day number. Read whole (up to 12 digits, with no digit before it) so that
# 99999999天后 is one absurd phrase kept unresolved, never the plausible tail 99天后.
_N = rf"(?:(?<![\d.])\d{{1,12}}|[{CN_NUMERAL_CHARS}]{{1,6}})"
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


def _on(year: int, month: int, day: int) -> Resolver:
    """A date written in full (2026-12-20): that day, if it exists."""

    def resolve(_today: date, _past: bool) -> Resolved:
        try:
            return date(year, month, day)
        except ValueError:
            return None

    return resolve


def _unresolved(_today: date, _past: bool) -> Resolved:
    return None


# A part of the day, and one with its hour (晚上, 下午三点) or an hour alone (三点钟): read here
# as a deadline and by intents.bare as a whole reply.
PART_OF_DAY = "早上|早晨|上午|中午|下午|傍晚|晚上|夜里"
CLOCK_TIME = rf"(?:{PART_OF_DAY})(?:\s*{_N}\s*点(?:钟|半)?)?|{_N}\s*点(?:钟|半)?"


def today_resolver() -> Resolver:
    return _offset(0)


def names_a_day(t: TimeExpr) -> bool:
    """Whether a calendar can place the phrase (16号, 明天), unlike 发工资 or 过年."""
    return t.resolve is not _unresolved


# A day further than this from today is not a pay date anyone schedules (一亿周后, 过一亿天):
# the phrase is kept unresolved (for a person to read) instead of overflowing the calendar.
# Three years is as far as the longest plan we offer (36 monthly installments) and covers
# every holiday named (the next 国庆 is at most a year away); beyond that a number is a typo
# or a provocation.
MAX_OFFSET_DAYS = 3 * 366


def within_bounds(today: date, day: date) -> bool:
    """Whether ``day`` is near enough to ``today`` to be a pay date (see MAX_OFFSET_DAYS)."""
    return abs((day - today).days) <= MAX_OFFSET_DAYS


def _offset(days: int | None) -> Resolver:
    if days is None or abs(days) > MAX_OFFSET_DAYS:
        return _unresolved
    return lambda today, _past: today + timedelta(days=days)


def _counted(raw: str, unit_days: int) -> Resolver:
    """``raw`` units of ``unit_days`` from today (两周后); unresolved when ``raw`` is no number we
    read (400 digits) or too far, never a silent default for a number we could not read."""
    n = _num(raw)
    return _offset(n * unit_days if n is not None and n <= MAX_OFFSET_DAYS else None)


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


def _yearly(month: int, day: int) -> Resolver:
    """The next such day, today included (双十一 said on 11-11 is today); the last one when past."""

    def resolve(today: date, past: bool) -> Resolved:
        d = date(today.year, month, day)
        if past:
            return d if d <= today else d.replace(year=today.year - 1)
        return d if d >= today else d.replace(year=today.year + 1)

    return resolve


# Holidays fixed on the solar calendar (shopping festivals included); the key is the name
# without a trailing 节. Lunar ones (春节, 中秋…) are in _UNRESOLVED: a wrong day is worse
# than none.
_SOLAR_HOLIDAYS: dict[str, tuple[int, int]] = {
    "元旦": (1, 1), "情人": (2, 14), "劳动": (5, 1), "五一": (5, 1), "国庆": (10, 1),
    "十一": (10, 1), "双十一": (11, 11), "双11": (11, 11), "双十二": (12, 12), "双12": (12, 12),
    "平安夜": (12, 24), "圣诞": (12, 25),
}  # fmt: skip
_CN = CN_NUMERAL_CHARS
_HOLIDAY = re.compile(
    r"(双十一|双11|双十二|双12|元旦|国庆|平安夜|圣诞|情人节|劳动节"
    # 五一 and 十一 are also numbers (十一号, 五一二): 十一 only before a holiday word, 五一 also
    # before a verb or the end of a clause.
    rf"|(?<![{_CN}\d])(?:五一|十一)(?=节|假|长假|黄金周|前|后|之前|之后|以前|以后|那)"
    rf"|(?<![{_CN}\d])五一(?=还|再|就|给|的时候|[,.!?;\s]|$))"
    r"节?(?:假期|长假|黄金周)?\s*(前|之前|以前|后|之后|以后|过后)?"
)


def _holiday(m: re.Match[str]) -> Resolver:
    # 国庆前 is a deadline (the day itself, like 下周五前); 国庆后 is any day after: unresolved.
    if m.group(2) and m.group(2).endswith("后"):
        return _unresolved
    return _yearly(*_SOLAR_HOLIDAYS[m.group(1).removesuffix("节")])


def _within(raw: str, unit_days: int) -> Resolver:
    """今天 .. ``raw`` units from today (3天内); unresolved when ``raw`` is too big to mean it."""
    n = _num(raw)
    if n is None or n * unit_days > MAX_OFFSET_DAYS:
        return _unresolved
    return _span(0, n * unit_days)


def _day_check(n: int | None, build: Callable[[int], Resolver]) -> Resolver:
    """下个月35号 names no day: unresolved (never the month as a whole, never an exception)."""
    return build(n) if n is not None and 1 <= n <= 31 else _unresolved


_WEEK = r"(?:周|星期|礼拜)"
_EN_DAYS = {"mon": 0, "tues": 1, "wednes": 2, "thurs": 3, "fri": 4, "satur": 5, "sun": 6}
_EN_WHICH = {"next": "下", "last": "上", "this": "这", "": ""}
_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Resolver | None], bool | None]] = [
    # (pattern, builder from the match, inherent tense)
    (_HOLIDAY, _holiday, None),
    (re.compile(r"大后天"), lambda m: _offset(3), False),
    (re.compile(r"大前天"), lambda m: _offset(-3), True),
    (re.compile(r"今天|今日|今儿|今晚|今早|今夜|今天晚上|当天"), lambda m: _offset(0), None),
    (re.compile(r"明天|明日|明儿|明早|明晚|明个"), lambda m: _offset(1), False),
    (re.compile(r"后天"), lambda m: _offset(2), False),
    (re.compile(r"昨天|昨日|昨儿|昨晚"), lambda m: _offset(-1), True),
    (re.compile(r"前天"), lambda m: _offset(-2), True),
    # English and texting shorthand (borrowers mix them in: 明天 is "tmr" as often as not).
    (re.compile(r"(?<![a-z])day after (?:tomorrow|tmrw?)(?![a-z])"), lambda m: _offset(2), False),
    (
        re.compile(
            r"(?<![a-z])(?:today|tonight|tonite|this (?:morning|afternoon|evening))(?![a-z])"
        ),
        lambda m: _offset(0),
        None,
    ),
    (
        re.compile(r"(?<![a-z])(?:tomorrow|tomorow|tmrw?|tmw|2moro|2morrow)(?![a-z])"),
        lambda m: _offset(1),
        False,
    ),
    (re.compile(r"(?<![a-z])yesterday(?![a-z])"), lambda m: _offset(-1), True),
    (
        re.compile(r"(?<![a-z])(?:(next|last|this) )?(mon|tues|wednes|thurs|fri|satur|sun)day"),
        lambda m: _weekday(_EN_WHICH[m.group(1) or ""], _EN_DAYS[m.group(2)]),
        None,
    ),
    (re.compile(r"(?<![a-z])next week(?![a-z])"), lambda m: _next_week, False),
    (re.compile(r"(?<![a-z])next month(?![a-z])"), lambda m: _next_month(None, None), False),
    (
        re.compile(r"(?<![a-z])(?:by )?(?:the )?end of (?:the |this )?month(?![a-z])"),
        lambda m: _this_month_part("底"),
        False,
    ),
    (re.compile(r"(?<![a-z])(?:this )?weekend(?![a-z])"), lambda m: _weekend(""), False),
    (re.compile(r"(?<![a-z])this week(?![a-z])"), lambda m: _this_week, False),
    (
        re.compile(r"(?<![a-z])in (\d{1,12}) days?(?![a-z])"),
        lambda m: _counted(m.group(1), 1),
        False,
    ),
    (
        re.compile(rf"({_N})\s*(?:天|日)\s*(?:后|之后|以后)"),
        lambda m: _counted(m.group(1), 1),
        False,
    ),
    (
        re.compile(rf"({_N})\s*个?\s*(?:周|星期|礼拜)\s*(?:后|之后|以后)"),
        lambda m: _counted(m.group(1), 7),
        False,
    ),
    (
        re.compile(rf"(?:({_N})\s*(?:天|日)|一个?(?:周|星期|礼拜))\s*(?:内|之内|以内)"),
        lambda m: _within(m.group(1), 1) if m.group(1) else _span(0, 7),
        False,
    ),
    (re.compile(r"过\s*(?:两|几|些|一两)\s*天"), lambda m: _span(1, 3), False),
    (re.compile(rf"过\s*({_N})\s*天"), lambda m: _counted(m.group(1), 1), False),
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
        lambda m: _day_check(_num(m.group(1)), lambda n: _next_month(n, None)),
        False,
    ),
    (re.compile(r"下个?月\s*(初|中|底|末)?"), lambda m: _next_month(None, m.group(1)), False),
    (
        re.compile(rf"上个?月\s*({_N})\s*(?:号|日)"),
        lambda m: _day_check(_num(m.group(1)), _last_month),
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
        # 2026-12-20, 2026/12/20, 2026.12.20, 2026年12月20日: the year, never an amount
        re.compile(
            r"(?<![\d.])(20\d\d)\s*[-/.年]\s*(1[0-2]|0?[1-9])\s*[-/.月]\s*(3[01]|[12]\d|0?[1-9])(?:日|号)?(?!\d)"
        ),
        lambda m: _on(int(m.group(1)), int(m.group(2)), int(m.group(3))),
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
    (
        # English: by the 10th, on the 15th, until the 20th (a day of the month to come)
        re.compile(r"(?<![\d.])(3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)\b"),
        lambda m: _day_of_month(int(m.group(1))),
        None,
    ),
]

# A time of day with no day named is today (晚上还, 下午三点前, 中午转): said in the morning of
# the day it is meant for. Only read when the reply names no day at all (明天晚上 is 明天's),
# and only as a deadline or right before paying: 晚上好 and 我晚上还要上班 name no pay day.
_PAY_SOON = r"(?=[^,.!?;\s]{0,4}?(?:还(?!要|在|是|没|得|有|会)|转|打|付|给|交|存|凑|处理))"
_TIME_OF_DAY = re.compile(
    rf"(?:{CLOCK_TIME})\s*(?:前|之前|以前)"
    rf"|(?:{PART_OF_DAY})(?:\s*{_N}\s*点(?:钟|半)?)?{_PAY_SOON}"
    # A bare hour needs 前 or 钟 (一点 alone is "a little": 多还一点).
    rf"|{_N}\s*点钟{_PAY_SOON}"
)

# Time phrases no calendar resolves; kept raw so a human or the flow can still use them.
_UNRESOLVED = re.compile(
    r"发(?:了)?工资|工资(?:到|下来|发)|发薪|开工资|领工资|等有钱|有钱(?:了|就|再)|手头宽裕|"
    r"回款|年底|过段时间|过一阵|过阵子|缓过来|周转过来|下次|"
    # Lunar festivals move against the solar calendar (and 节后 names no festival at all).
    r"(?:过年|春节|中秋节?|端午节?|元宵节?|清明节?|七夕|重阳节?|除夕|小年|腊八|年|节|假期|放假|长假"
    r"|开学)(?:前|后|之前|之后|以后|过后)|过年|春节|中秋|端午|元宵|清明|七夕|重阳|除夕|腊八"
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
    if not found:
        for m in _TIME_OF_DAY.finditer(text):
            taken.append(m.span())
            found.append(TimeExpr(m.group(), m.start(), m.end(), _offset(0), None))
    for m in _UNRESOLVED.finditer(text):
        s, e = m.span()
        if not any(s < te and ts < e for ts, te in taken):
            found.append(TimeExpr(m.group(), s, e, _unresolved, None))
    yield from sorted(found, key=lambda t: t.start)

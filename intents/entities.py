"""Entities of a promise or a payment: date or date range, amount, number of installments; and
the words with which a reply doubts that the sender is genuine (``doubt``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from intents.bare import bare_answer
from intents.dates import TimeExpr, find_time_expressions, names_a_day, within_bounds
from intents.model import Entities, Intent, Span
from intents.numbers import NUMBER_RE, parse_number

_CURRENCY_AFTER = re.compile(r"\s*(?:元|块|圆|rmb|人民币|cny|yuan|米)")
_CURRENCY_BEFORE = re.compile(r"(?:¥|￥|rmb|人民币|cny)\s*$")
# Words after a number that make it a count of something other than money.
_NOT_MONEY_AFTER = re.compile(
    r"\s*(?:天|日|号|hao|点|时|分钟|小时|期|个|月(?![底初中])|年|周|星期|礼拜|次|岁|%|成|倍|楼|人|条|位"
    r"|斤|公里|折|投诉|举报|热线|客服|电话"
    # 15或16号, 15到18号: the first day of two, never money
    r"|(?:或者?|到|至|~|-)\s*\d{1,2}\s*(?:号|日)"
    # the 20th, by the 10th: an English day of the month, never money
    r"|(?:st|nd|rd|th)\b)"
)
# 几十块, 十几万, 几百: a guess at a figure, not an amount to act on.
_VAGUE = "几"
# The debt quoted back is not what the borrower pays: 欠3200, 你们说的3200, 一共3200.
_DEBT_BEFORE = re.compile(
    r"(?:欠|借|借了|欠了|逾期|本金|利息|罚息|总共|一共|共|总额|剩|还剩|还差|差|应还|账单|说的|"
    r"显示|要我还|让我还|让我|要我|收我|扣我|多收|只借|才借|催)\s*(?:你们|我)?\s*$"
)
_DEBT_AFTER = re.compile(
    r"\s*(?:元|块)?\s*(?:不对|哪来|怎么来|是什么|是怎么|太多|太高|多了|的利息|利息|包含|包括|含|是本金)"
)
_PHONE_LIKE = re.compile(r"\d{7,}")
# Numbers that identify rather than count: a card or account tail, a phone or hotline
# (尾号1234, 卡号后四位5678, 拨打95588). Never money, even next to 还 or 扣.
_IDENTIFIER_BEFORE = re.compile(
    r"(?:尾号|尾数|后\s*[三四六346]\s*位(?:数|号)?|末\s*[四4]\s*位|卡号|账号|帐号|手机号?|号码|电话|"
    r"热线|工号|编号|单号|订单号?|验证码|密码|拨打|致电|打给|call|tel)\s*(?:是|为|:)?\s*$"
)
# Bank and carrier hotlines (95588, 96xxx, 10086) are five-digit numbers no borrower pays
# without a currency word; a round figure (96000) is still money.
_HOTLINE = re.compile(r"9[56]\d(?!00)\d\d|100(?:86|10)|123(?:15|21|45|58|60|63|78|80|86)")
# Digit groups joined by hyphens are a phone number (400-800-1234, 021-5555-1234, 0755-1234567)
# but one hyphen between two figures is a range of money (500-1000).
_DASHED = re.compile(r"(?<![\d.])(?:\d{2,4}-\d{3,4}-\d{3,8}|(?:0\d{1,3}|400|800)-\d{5,8})(?![\d.])")
# Above this no borrower of a consumer loan pays in one go: a bigger figure is a typo, an
# account number or a provocation, and is not acted on (the flow asks instead).
MAX_AMOUNT = 10_000_000
# 今天没空, 今天来不及了, 今天有事, 今天先不还: the day is put off, not named (a borrower's trial:
# 今天没空，明天还 was read as a promise for today, then called broken). 行不行, 能不能 and
# 方便不方便 ask "is it all right?": an offer put as a question, not a refusal.
_CANNOT = (
    r"不上|不了|不起|不出|没钱|(?<!行)不行|(?<!方便)不方便|来不及|赶不及|不够|没办法|没法"
    r"|够呛|(?<!能)不能|(?<!还)不还"
)
# Busy, right after the day only: 今天有事 puts today off, 明天下班有事回来就还 does not.
_BUSY = r"没空|没时间|有事|太忙|很忙|在忙|忙不过来|不得空|不得闲"
_CANNOT_PAY = re.compile(rf"[^,.!?;\s]{{0,4}}?(?:{_CANNOT})|[^,.!?;\s]?(?:{_BUSY})")
# A sum said to be out of reach, after it or before it: 8000块我一下子拿不出来, 一次还不了8000,
# 没有8000, 拿不出3200 (a borrower's trial recorded each as a promise of that sum).
_CANNOT_PAY_SUM = re.compile(rf"[^,.!?;\s]{{0,6}}?(?:{_CANNOT}|{_BUSY})")
_CANNOT_PAY_BEFORE = re.compile(
    r"(?:还不上|还不了|还不起|拿不出|拿不出来|凑不齐|凑不出|凑不够|付不起|没有|没)\s*(?:这)?\s*$"
)
# 我周五发工资，周六还: the day the money comes is not the day it is paid, when another follows.
_PAY_DAY_AFTER = re.compile(r"[^,.!?;\s]{0,2}?(?:发工资|发薪|开工资|领工资|工资到|到账)")
_NOT_THAT_DAY = re.compile(r"(?:不是|并非|而不是)\s*$")
_PAY_VERB_AFTER = re.compile(r"[^,.!?;\s]{0,3}?(?:还|转|打|付|给)")
_SAME_DAY = frozenset({"当天", "那天", "这天"})
_INSTALLMENTS = re.compile(
    r"(?:分|拆)\s*(?:成|为)?\s*(\d{1,2}|[一二两三四五六七八九十]{1,3})\s*(?:期|个月|次|份|个月还|回)"
    r"|(\d{1,2}|[一二两三四五六七八九十]{1,3})\s*期(?:还|付|分期)?"
)
# split it into 3 payments, pay in four instalments, 6 monthly installments
_EN_INSTALLMENTS = re.compile(
    r"\b(?:into|in)\s+(\d{1,2}|two|three|four|five|six|seven|eight|nine|ten|twelve)\s+"
    r"(?:monthly\s+)?(?:payments|installments|instalments|parts|months)\b"
)
_EN_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
               "nine": 9, "ten": 10, "twelve": 12}  # fmt: skip
_PLAN_CONTEXT = re.compile(r"分期|分\s*(?:成|为)?\s*\S{1,3}\s*(?:期|个月|次)|期")

# Doubt that the sender is who it says (骗子, 是不是诈骗, 假的吧, 怎么证明): not a refusal nor an
# insult by itself; the answer is the official way to check. Not after a negation (不是骗子).
_DOUBT = re.compile(
    r"(?:(?<!不是)(?<!并非)|(?<=是不是))(?:骗子|诈骗|骗人|骗钱|假冒|冒充|钓鱼短信|假短信)"
    r"|(?:是|都是)?假的(?:吧|吗|么)|(?:正规|合法)(?:的)?(?:吗|么|嘛|公司|平台|机构)"
    r"|(?:怎么|如何|咋)(?:证明|核实|确认|辨别|知道)(?:你们|这)"
    r"|(?<![a-z])(?<!not a )(?:scam|scammers?|fraud|phishing)(?![a-z])"
)

AMOUNT_INTENTS = frozenset({Intent.PROMISE_TO_PAY, Intent.ALREADY_PAID, Intent.REQUEST_PLAN})
DATE_INTENTS = frozenset(
    {Intent.PROMISE_TO_PAY, Intent.ALREADY_PAID, Intent.REQUEST_PLAN, Intent.HARDSHIP}
)


@dataclass
class Readings:
    """Entity candidates read from one normalised text, before tense and intent are known."""

    times: list[TimeExpr] = field(default_factory=list)
    amounts: list[Span] = field(default_factory=list)
    installments: Span | None = None
    # Starts of time phrases that are not the pay day: put off (今天没空) or a pay day (发工资).
    negated: frozenset[int] = frozenset()
    doubt: str | None = None
    # The reply is nothing but a day to come (16号, 明天吧): the answer to "which day?";
    # ``bare_asked``: offered as a question (16号可以吗).
    bare: bool = False
    bare_asked: bool = False


def read(text: str) -> Readings:
    """Everything that depends on the text alone (cacheable per normalised text)."""
    times = list(find_time_expressions(text))
    bare = bare_answer(text, times)
    if bare is not None:
        times = bare.times
    taken = [(t.start, t.end) for t in times]
    inst = _read_installments(text)
    if inst is not None:
        taken.append((inst.start, inst.end))
    amounts = [
        a
        for a in _read_amounts(text)
        if not any(a.start < e and s < a.end for s, e in taken)
        # 8000一次性还不上, 3000拿不出来: the sum the borrower cannot pay is not an offer (a
        # borrower's trial: 8000一次性还不上，能不能分6期 recorded a promise of 8,000)
        and not _CANNOT_PAY_SUM.match(text, a.end)
        and not _CANNOT_PAY_BEFORE.search(text, max(0, a.start - 8), a.start)
    ]
    days = [t for t in times if names_a_day(t)]
    negated = frozenset(
        t.start
        for t in times
        if _CANNOT_PAY.match(text, t.end)
        # 不是16号，是18号; 18号，不是16号: the day corrected away
        or _NOT_THAT_DAY.search(text, max(0, t.start - 3), t.start)
        # a pay day before another day named for paying (but 下个月10号发工资那天还 and
        # 周五发工资，当天还 pay on the pay day itself)
        or (
            _PAY_DAY_AFTER.match(text, t.end)
            and any(
                d.start > t.end and d.text not in _SAME_DAY and _PAY_VERB_AFTER.match(text, d.end)
                for d in days
            )
        )
    )
    doubt = _DOUBT.search(text)
    return Readings(
        times=times,
        amounts=amounts,
        installments=inst,
        negated=negated,
        doubt=doubt.group() if doubt else None,
        bare=bare is not None,
        bare_asked=bare is not None and bare.asked,
    )


def _read_amounts(text: str) -> list[Span]:
    found: list[Span] = []
    dashed = [m.span() for m in _DASHED.finditer(text)]
    for m in NUMBER_RE.finditer(text):
        token, s = m.group().rstrip(), m.start()
        e = s + len(token)
        value = parse_number(token)
        if value is None or value <= 0 or value > MAX_AMOUNT:
            continue
        if any(s < de and ds < e for ds, de in dashed):
            continue
        before, after = text[max(0, s - 8) : s], text[e : e + 8]
        if _IDENTIFIER_BEFORE.search(before):
            continue
        has_currency = bool(_CURRENCY_AFTER.match(after) or _CURRENCY_BEFORE.search(before))
        if _HOTLINE.fullmatch(token) and not has_currency:
            continue
        if _PHONE_LIKE.fullmatch(token.replace(",", "")) and not has_currency:
            continue
        if not has_currency and _NOT_MONEY_AFTER.match(after):
            continue
        if _DEBT_BEFORE.search(before) or _DEBT_AFTER.match(after):
            continue
        if text[s - 1 : s] == _VAGUE or text[e : e + 1] == _VAGUE:
            continue
        is_chinese = not token[0].isdigit()
        # 一下, 一点, 一起: a lone small Chinese numeral is a word, not money.
        if value < 10 and not has_currency:
            continue
        if is_chinese and value < 50 and not has_currency:
            continue
        end = e
        cm = _CURRENCY_AFTER.match(after)
        if cm:
            end = e + cm.end()
        found.append(Span(kind="amount", text=text[s:end], start=s, end=end, value=value))
    return found


def _read_installments(text: str) -> Span | None:
    m = _INSTALLMENTS.search(text)
    if m is None:
        return _read_english_installments(text)
    raw = m.group(1) or m.group(2)
    if (
        m.group(2)
        and not _PLAN_CONTEXT.search(text[: m.start()] + text[m.end() :])
        and not m.group(0).endswith(("还", "付"))
    ):
        return None
    n = parse_number(raw)
    if n is None or not 2 <= n <= 60:
        return None
    return Span(kind="installments", text=m.group(), start=m.start(), end=m.end(), value=int(n))


def resolve(
    readings: Readings, intents: frozenset[Intent], today: date
) -> tuple[Entities, tuple[Span, ...]]:
    """Picks the entities that matter for these intents and resolves dates against ``today``."""
    past = Intent.ALREADY_PAID in intents and Intent.PROMISE_TO_PAY not in intents
    spans: list[Span] = []
    the_date: date | None = None
    the_range: tuple[date, date] | None = None
    unresolved: list[str] = []
    if intents & DATE_INTENTS:
        # 今天还不上 明天一定还: a day the borrower says they cannot pay is not the pay date,
        # even alone (明天还不上, 20号不行: a borrower's trial had each confirmed as a promise).
        times = [t for t in readings.times if t.start not in readings.negated]
        for t in times:
            try:
                value = t.resolve(today, t.inherent_past if t.inherent_past is not None else past)
            except (OverflowError, ValueError):  # a day outside the calendar (near year 9999)
                value = None
            # Whatever a reader computed, a day years away is not a pay date: kept unresolved.
            if value is not None and not all(
                within_bounds(today, d) for d in (value if isinstance(value, tuple) else (value,))
            ):
                value = None
            if value is None:
                unresolved.append(t.text)
                spans.append(Span(kind="unresolved_date", text=t.text, start=t.start, end=t.end))
            elif isinstance(value, tuple):
                spans.append(
                    Span(kind="date_range", text=t.text, start=t.start, end=t.end, value=value)
                )
                the_range = the_range or value
            else:
                spans.append(Span(kind="date", text=t.text, start=t.start, end=t.end, value=value))
                if the_date is None or _prefer(value, the_date, today, past):
                    the_date = value
    amount: float | None = None
    if intents & AMOUNT_INTENTS and readings.amounts:
        first = readings.amounts[0]
        spans.append(first)
        amount = first.value
    installments: int | None = None
    if readings.installments is not None:
        spans.append(readings.installments)
        installments = readings.installments.value
    if the_date is not None:
        the_range = None  # a specific day beats a fuzzy one (下周一之前 → the Monday)
    entities = Entities(
        date=the_date,
        date_range=the_range,
        amount=_clean_number(amount),
        installments=installments,
        unresolved=tuple(unresolved) if the_date is None and the_range is None else (),
        doubt=readings.doubt,
    )
    return entities, tuple(sorted(spans, key=lambda sp: sp.start))


def _prefer(candidate: date, current: date, today: date, past: bool) -> bool:
    """With two dates, a promise is about the future and a payment about the past."""
    cand_ok = candidate <= today if past else candidate >= today
    cur_ok = current <= today if past else current >= today
    return cand_ok and not cur_ok


def _clean_number(value: float | None) -> float | None:
    if value is None:
        return None
    return float(int(value)) if value == int(value) else round(value, 2)


def _read_english_installments(text: str) -> Span | None:
    m = _EN_INSTALLMENTS.search(text)
    if m is None:
        return None
    raw = m.group(1)
    n = int(raw) if raw.isdigit() else _EN_NUMBERS[raw]
    if not 2 <= n <= 60:
        return None
    return Span(kind="installments", text=m.group(), start=m.start(), end=m.end(), value=n)

"""Contact preferences a borrower states in a reply: 晚上别发, 上班时间别打扰, "not after 6pm".

:func:`extract` turns one reply into quiet periods (local wall time, see
:class:`~bot.compliance.window.QuietPeriod`); :func:`merge` adds them to what the account
already has. Only the restrictive direction is read: a borrower who asks for fewer messages is
honoured at once; widening contact again ("晚上也可以发") is left to a human. When a phrase is
ambiguous we read it the way that contacts the borrower less (a false positive costs a later
message; a false negative breaks a promise we made by listening).

Readings (times are the borrower's local time):

==========================================  =============================================
晚上/晚间/夜里/夜间/晚上别发                    evening 18:00–08:00, every day
半夜/深夜/凌晨别发                              night 22:00–08:00
上班时间/工作时间/上班期间别发, "at work"         working hours 09:00–18:00, Monday–Friday
工作日别发                                     Monday–Friday, all day
中午/午休别发                                  noon 12:00–14:00
下午别发                                       afternoon 12:00–18:00
早上/早晨/清早别发                              morning 08:00–10:00
上午别发                                       morning 08:00–12:00
周末/双休日别发, "no texts on weekends"          Saturday and Sunday, all day
8点以后别发 / 九点后别发 / "not after 6pm"       that time until 08:00 the next morning
别在10点前发 / 10点之前别发 / "not before 10am"  00:00 until that time
==========================================  =============================================

Hours without a marker: "after N" with N from 1 to 11 means the evening (8点以后 = 20:00; a
borrower asking for no messages after 08:00 would be asking for none at all); "before N" is
read as written (别在10点前发 = 10:00). 上午/早上/凌晨 force the morning, 下午/晚上 the evening.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable

import opencc

from bot.compliance.window import Preferences, QuietPeriod

MAX_SOURCE_CHARS = 500

_T2S = opencc.OpenCC("t2s")  # built once: construction loads the conversion tables
_APOSTROPHES = str.maketrans("", "", "'’‘`´")
_PUNCT = str.maketrans({"，": ",", "。": ".", "！": "!", "？": "?", "；": ";", "、": ","})

_WEEKDAYS = frozenset(range(5))
_WEEKEND = frozenset({5, 6})
_MORNING_RESUME = dt.time(8, 0)  # "after 8pm" lasts until the morning
_WHOLE_DAY = (dt.time(0, 0), dt.time(0, 0))

# --- Chinese building blocks (on normalised text: simplified, lower case, no spaces) ---------
# A refusal. 不要紧 ("never mind") is not one.
_NEG = r"(?:别|不要(?!紧)|不用|勿|莫|不准|不许|不能|禁止|不想|不希望|不方便|请勿|拒绝)"
_VERB = r"(?:发|打|联系|打扰|催|骚扰|给我发|给我打|来|短信|信息|消息|电话)"
_GAP = r"[^,.!?;:|\d]{0,5}?"  # a few words between the time and the refusal, not a clause
_NUM = r"(\d{1,2}|[零一二两三四五六七八九十]{1,3})"
_MIN = r"(?:(半)|(\d{1,2}|[零一二三四五六七八九十]{1,3})分?)?"
_MARK = r"(早上|早晨|上午|凌晨|清早|中午|下午|傍晚|晚上|夜里|晚)?"
_AT = rf"{_MARK}{_NUM}(?:点钟?|时|:){_MIN}"
_AFTER = r"(?:以后|之后|过后|后)"
_BEFORE = r"(?:以前|之前|前)"

_AM_MARKS = {"早上", "早晨", "上午", "凌晨", "清早"}
_PM_MARKS = {"下午", "傍晚", "晚上", "夜里", "晚"}

_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4}
_CN_DIGITS |= {"五": 5, "六": 6, "七": 7, "八": 8, "九": 9}

# --- English (on the same text: spaces and apostrophes gone, "don't text me" → donttextme) ----
_NEG_EN = r"(?:pleasedont|pleasedonot|pleasenot|dont|donot|never|not|no|stop)"
_FILL_EN = (
    r"(?:me|us|please|any|anymore|more|texts?|texting|txts?|sms|messages?|messaging|calls?|"
    r"calling|contact(?:ing)?|bother(?:ing)?|reach(?:ing)?|email(?:ing)?|send(?:ing)?|them)*"
)
# Work and evening need a contact verb: "i'm not at work" is no request.
_NEG_EN_VERB = (
    rf"{_NEG_EN}(?:me|please|any)*(?:texts?|texting|txts?|sms|messages?|messaging|calls?|"
    r"calling|contact(?:ing)?|bother(?:ing)?|reach(?:ing)?|email(?:ing)?)"
)
_HOUR_EN = r"(\d{1,2})(?::(\d{2}))?(am|pm|a\.m\.|p\.m\.|oclock)?"


def _time_word(pattern: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A time word then a refusal (晚上别发), or a refusal then the word and a verb (别晚上发)."""
    return (
        re.compile(rf"(?:{pattern}){_GAP}{_NEG}"),
        re.compile(rf"{_NEG}(?:再)?(?:在)?(?:{pattern})(?:的时候|时候|时间|期间)?(?:被)?{_VERB}"),
    )


def _period(
    start: dt.time, end: dt.time, label: str, weekdays: frozenset[int] | None = None
) -> Callable[[str], QuietPeriod]:
    return lambda source: QuietPeriod(
        start=start, end=end, weekdays=weekdays, label=label, source_text=source
    )


# Order matters only for readability: every table row is tried on the whole text.
_WORDS: list[tuple[tuple[re.Pattern[str], ...], Callable[[str], QuietPeriod]]] = [
    (
        _time_word(
            r"上班时间|上班的时候|上班期间|上班时|上班|工作时间|工作的时候|工作期间|办公时间"
        ),
        _period(dt.time(9), dt.time(18), "working hours", _WEEKDAYS),
    ),
    (_time_word(r"工作日"), _period(*_WHOLE_DAY, "working days", _WEEKDAYS)),
    (
        _time_word(
            r"周末|周六周日|周六日|周六和周日|星期六日|星期六和星期[天日]|星期六星期[天日]|礼拜六日|双休日|双休"
        ),
        _period(*_WHOLE_DAY, "weekend", _WEEKEND),
    ),
    (_time_word(r"晚上|晚间|夜里|夜间|夜晚|傍晚以后"), _period(dt.time(18), dt.time(8), "evening")),
    (_time_word(r"半夜|深夜|凌晨"), _period(dt.time(22), dt.time(8), "night")),
    (_time_word(r"中午|午休|午饭时间|午睡"), _period(dt.time(12), dt.time(14), "noon")),
    (_time_word(r"下午"), _period(dt.time(12), dt.time(18), "afternoon")),
    (_time_word(r"早上|早晨|清早|大清早|一大早|一早"), _period(dt.time(8), dt.time(10), "morning")),
    (_time_word(r"上午"), _period(dt.time(8), dt.time(12), "morning")),
    # English
    (
        (
            re.compile(
                rf"{_NEG_EN_VERB}{_FILL_EN}(?:at|during|while(?:im|iam)?(?:at)?|in)(?:my|the)?"
                r"(?:work|office|job|businesshours|workinghours|workhours)"
            ),
        ),
        _period(dt.time(9), dt.time(18), "working hours", _WEEKDAYS),
    ),
    (
        (
            re.compile(rf"{_NEG_EN}{_FILL_EN}(?:on|at|during|over|in)?(?:the)?weekends?"),
            re.compile(rf"{_NEG_EN}{_FILL_EN}(?:on)?(?:saturdays?(?:or|and|&)sundays?)"),
        ),
        _period(*_WHOLE_DAY, "weekend", _WEEKEND),
    ),
    (
        (
            re.compile(
                rf"{_NEG_EN_VERB}{_FILL_EN}(?:in|during|at)?(?:the)?(?:evenings?|nights?|nighttime)"
            ),
        ),
        _period(dt.time(18), dt.time(8), "evening"),
    ),
]

# Hour phrases are read first and cut out, so 晚上9点以后别发 is "after 21:00", not also "evening".
_CN_AFTER = (
    re.compile(rf"{_AT}{_AFTER}{_GAP}{_NEG}"),
    re.compile(rf"{_NEG}(?:再)?(?:在)?{_AT}{_AFTER}(?:再)?{_VERB}"),
)
_CN_BEFORE = (
    re.compile(rf"{_AT}{_BEFORE}{_GAP}{_NEG}"),
    re.compile(rf"{_NEG}(?:再)?(?:在)?{_AT}{_BEFORE}(?:再)?{_VERB}"),
)
_EN_AFTER = re.compile(rf"{_NEG_EN}{_FILL_EN}(?:after|past|laterthan){_HOUR_EN}")
_EN_BEFORE = re.compile(rf"{_NEG_EN}{_FILL_EN}(?:before|earlierthan){_HOUR_EN}")


def normalize(text: str) -> str:
    """NFKC (full width → half width), traditional → simplified, lower case, no spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = _T2S.convert(text).lower().translate(_PUNCT).translate(_APOSTROPHES)
    return "".join(text.split())


def extract(text: str) -> list[QuietPeriod]:
    """The quiet periods a borrower asked for in ``text``; ``[]`` when none. No duplicates."""
    return list(_extract(text))


@functools.lru_cache(maxsize=4096)
def _extract(text: str) -> tuple[QuietPeriod, ...]:
    # Runs on every reply, and replies repeat (好的, 明天还): each text is read once. The
    # periods are frozen models, so sharing them is safe.
    source = text.strip()[:MAX_SOURCE_CHARS]
    norm = normalize(text)
    found: list[QuietPeriod] = []

    def cut(m: re.Match[str]) -> str:
        return "|" * len(m.group())

    for pattern in _CN_AFTER:
        for m in pattern.finditer(norm):
            found.extend(_after(_cn_time(m.group(1), m.group(2), m.group(3), m.group(4)), source))
        norm = pattern.sub(cut, norm)
    for pattern in _CN_BEFORE:
        for m in pattern.finditer(norm):
            found.extend(
                _before(_cn_time(m.group(1), m.group(2), m.group(3), m.group(4), True), source)
            )
        norm = pattern.sub(cut, norm)
    for m in _EN_AFTER.finditer(norm):
        found.extend(_after(_en_time(m.group(1), m.group(2), m.group(3), before=False), source))
    norm = _EN_AFTER.sub(cut, norm)
    for m in _EN_BEFORE.finditer(norm):
        found.extend(_before(_en_time(m.group(1), m.group(2), m.group(3), before=True), source))
    norm = _EN_BEFORE.sub(cut, norm)

    for patterns, make in _WORDS:
        if any(p.search(norm) for p in patterns):
            found.append(make(source))
    return tuple(_dedupe(found))


def merge(existing: Preferences | None, new: Iterable[QuietPeriod]) -> Preferences:
    """``existing`` plus the periods of ``new`` it does not already have (same start, end and
    weekdays; the first-recorded label and source text are kept). Nothing is ever removed."""
    periods = list(existing.no_contact) if existing is not None else []
    return Preferences(no_contact=tuple(_dedupe([*periods, *new])))


def _dedupe(periods: Iterable[QuietPeriod]) -> list[QuietPeriod]:
    seen: dict[object, QuietPeriod] = {}
    for p in periods:
        seen.setdefault(p.key, p)
    return list(seen.values())


def _after(start: dt.time | None, source: str) -> list[QuietPeriod]:
    if start is None or start == _MORNING_RESUME:
        return []
    return [
        QuietPeriod(
            start=start, end=_MORNING_RESUME, label=f"after {start:%H:%M}", source_text=source
        )
    ]


def _before(end: dt.time | None, source: str) -> list[QuietPeriod]:
    if end is None or end == dt.time(0, 0):
        return []
    return [
        QuietPeriod(start=dt.time(0, 0), end=end, label=f"before {end:%H:%M}", source_text=source)
    ]


def _cn_number(s: str) -> int | None:
    if s.isdigit():
        return int(s)
    if s == "十":
        return 10
    if s.startswith("十"):  # 十一 … 十九
        rest = _CN_DIGITS.get(s[1:]) if len(s) == 2 else None
        return 10 + rest if rest is not None else None
    if len(s) == 1:
        return _CN_DIGITS.get(s)
    if len(s) == 2 and s[1] == "十":  # 二十
        tens = _CN_DIGITS.get(s[0])
        return tens * 10 if tens is not None else None
    if len(s) == 3 and s[1] == "十":  # 二十一
        tens, ones = _CN_DIGITS.get(s[0]), _CN_DIGITS.get(s[2])
        return tens * 10 + ones if tens is not None and ones is not None else None
    return None


def _cn_time(
    mark: str | None, hour: str, half: str | None, minute: str | None, before: bool = False
) -> dt.time | None:
    h = _cn_number(hour)
    m = 30 if half else (_cn_number(minute) if minute else 0)
    if h is None or m is None:
        return None
    return _clock(h, m, pm=mark in _PM_MARKS, am=mark in _AM_MARKS, before=before)


def _en_time(hour: str, minute: str | None, suffix: str | None, *, before: bool) -> dt.time | None:
    suffix = (suffix or "").replace(".", "")
    return _clock(int(hour), int(minute or 0), pm=suffix == "pm", am=suffix == "am", before=before)


def _clock(h: int, m: int, *, pm: bool, am: bool, before: bool) -> dt.time | None:
    """A stated hour as a wall time, resolving 12-hour readings (see the module docstring)."""
    if h == 24 and m == 0:
        h = 0
    if not (0 <= h <= 23 and 0 <= m <= 59):
        return None
    if pm and 1 <= h <= 11:
        h += 12
    elif am and h == 12:
        h = 0
    elif not am and not pm and not before and 1 <= h <= 11:
        h += 12  # 8点以后别发 = after 20:00
    return dt.time(h, m)

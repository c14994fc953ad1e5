"""A reply that is nothing but a day to come: the answer to "which day will you pay?".

After the bot asks which day, borrowers answer 16号, 十八号吧, 明天, 晚上, 16号可以吗 or
今天不行，明天吧. Such replies carry too few n-grams for the model (a borrower's trial: 16号 was
unknown and 十八号吧 a stop), so they are recognised here, from the time phrases
:mod:`intents.dates` found and what may stand around them, and :mod:`intents.nlu` reads them as
a promise of that day (or, asked, a day offered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from intents.dates import CLOCK_TIME, PART_OF_DAY, TimeExpr, names_a_day, today_resolver

# What may stand around the day in a reply that is only a day: hedges, particles, joins,
# deadlines and parts of the day (16号吧, 那就下周一之前, 大概15号左右, 16号或者18号, 后天上午,
# by the 20th). Never a verb: 16号还 is a promise the model reads, 16号发工资 is not a pay day.
_FILLER_WORDS = (
    r"吧|啊|呀|哦|噢|喔|嗯|呢|哈|啦|咯|哟|嘞|呗|左右|之前|以前|之后|以后|前后|前|后|那天|当天|这天|"
    r"大概|应该|差不多|估计|可能|一定|争取|尽量|最晚|最迟|或者|或|和|到|至|就|那就|那么|那|好了|"
    rf"{PART_OF_DAY}|好的|谢谢|多谢|收到|知道了|行|可以|没问题|"
    # a day corrected (the confirmation says 如有变化请回复): 不对，是18号; 错了，18号; 改成18号
    r"不对|错了|写错了|说错了|打错字了|搞错了|弄错了|改成|改为|应该是|其实是|是|"
    r"(?<![a-z])(?:by|on|the|around|maybe|probably|ok|okay|thanks|thx)(?![a-z])|[\s,.!~;:…、\-—～]"
)
_BARE_FILLER = re.compile(rf"(?:{_FILLER_WORDS})+")
# With two days named, one may be put off or corrected and the other offered: 今天不行，明天吧;
# 16号有事，改到18号; 明天还不了了，推到周五; 不是16号，是18号 (the entities keep the day offered).
_PUT_OFF = re.compile(
    r"(?:不是|不行|不可以|没空|没时间|来不及|有事|不方便|先不还|不还|还不了|还不上|没钱|了|改到|推到|"
    rf"换到|挪到|延到|推迟到|改|{_FILLER_WORDS})+"
)
# Asked, the day is offered for the bot to accept (16号可以吗, 18号行不行, 明天吧?): DATA.md
# labels a day offered as a question [request_plan, promise_to_pay].
_ASKED = re.compile(
    r"(?:可以吗|可以么|可以不|可不可以|行吗|行么|行不行|好吗|好不好|成吗|ok吗|吗|么|嘛|[?])"
    r"[\s?!.~]*$"
)
# A time of day or "soon" alone (晚上, 下午吧, 马上, 一会儿) answers "which day": today, when it is
# the whole reply.
_BARE_TIME_OF_DAY = re.compile(
    rf"{CLOCK_TIME}|今晚|一会儿?|马上|待会儿?|等会儿?|稍后|晚点|晚些|立刻|现在"
)


@dataclass(frozen=True)
class BareAnswer:
    """A reply that is nothing but a day to come: its time phrases, and whether it is asked."""

    times: list[TimeExpr]
    asked: bool


def bare_answer(text: str, times: list[TimeExpr]) -> BareAnswer | None:
    """The reply as the answer to the bot's "which day will you pay?" when it is nothing but a
    day to come (16号, 明天吧, 晚上, 16号可以吗, 今天不行明天吧), else None (a borrower's trial:
    after that question 16号, 18号 and 明天 were not understood, and the bot handed off)."""
    asked = _ASKED.search(text)
    core = text[: asked.start()] if asked else text
    times = [t for t in times if t.end <= len(core)]
    if not times:
        m = _BARE_TIME_OF_DAY.search(core)
        if m is None:
            return None
        times = [TimeExpr(m.group(), m.start(), m.end(), today_resolver(), None)]
    # 昨天 answers something else; 发工资, 过年 name no day (16号发工资 is a pay day, no offer).
    if any(t.inherent_past or not names_a_day(t) for t in times):
        return None
    between = _PUT_OFF if len(times) > 1 else _BARE_FILLER
    rest, cut = [], 0
    for t in sorted(times, key=lambda t: t.start):
        rest.append(core[cut : t.start])
        cut = max(cut, t.end)
    rest.append(core[cut:])
    if not all(not r or between.fullmatch(r) for r in rest):
        return None
    return BareAnswer(times, asked=asked is not None)

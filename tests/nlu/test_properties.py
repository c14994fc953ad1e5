"""Property tests: understanding never fails, and a stop request is never missed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intents import Intent, Understander
from intents import entities as ent
from intents.dates import MAX_OFFSET_DAYS
from tests.nlu.conftest import NOW

PROPS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

STOP_WORDS = [
    "退订",
    "TD",
    "T",
    "STOP",
    "拒收",
    "别再发了",
    "不要再联系我",
    "别给我发短信",
    "取消订阅",
]
TRADITIONAL = {
    "订": "訂",
    "发": "發",
    "联": "聯",
    "系": "係",
    "给": "給",
    "别": "別",
    "短": "短",
    "信": "信",
    "消": "消",
    "阅": "閱",
}
# Harmless context a borrower might put around the request (never a negation of it).
CONTEXT = st.sampled_from(
    ["", "好的", "明天还", "你们", "谢谢", "烦死了", "!", "。", "😡", "ok", "张先生"]
)


def _full_width(c: str) -> str:
    return chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c


@st.composite
def stop_spellings(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(STOP_WORDS))
    out = []
    for c in word:
        if draw(st.booleans()):
            c = c.swapcase()
        if draw(st.booleans()):
            c = _full_width(c)
        if draw(st.booleans()):
            c = TRADITIONAL.get(c, c)
        out.append(c)
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(st.sampled_from([" ", "  ", "\u3000"])))
    return draw(CONTEXT) + " " + "".join(out).strip() + " " + draw(CONTEXT)


@PROPS
@given(text=st.text(max_size=300))
def test_never_raises(nlu: Understander, text: str) -> None:
    u = nlu.understand(text, now=NOW)
    assert u.intents and all(0.0 <= s.score <= 1.0 for s in u.intents)
    assert (u.intent == Intent.STOP) == u.has(Intent.STOP) or u.intent == Intent.STOP


@PROPS
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    offset=st.integers(min_value=-400, max_value=400),
    tz=st.sampled_from(["Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata"]),
)
def test_any_clock_and_zone(nlu: Understander, text: str, offset: int, tz: str) -> None:
    now: datetime = NOW + timedelta(days=offset)
    u = nlu.understand("明天还" + text, now=now, tz=tz)
    assert u.intents


@PROPS
@given(text=stop_spellings())
def test_every_spelling_of_stop_is_detected(nlu: Understander, text: str) -> None:
    u = nlu.understand(text, now=NOW)
    assert u.intent == Intent.STOP, (text, u.explain.normalized, u.intents)


# Numbers and time units as a hostile or careless sender strings them together: huge runs of
# digits, 亿 and 万 stacked, offsets of every unit (issue 16, item 15: 400-digit amounts and
# 一亿周后 overflowed).
_NUMERALS = st.one_of(
    st.integers(min_value=0, max_value=10**400).map(str),
    st.text(alphabet="零一二两三四五六七八九十百千万亿壹贰仟", min_size=1, max_size=12),
    st.sampled_from(["1e400", "9" * 400, "1.5万", "3k", "2w", "0", "00", "1,000,000,000,000"]),
)
_UNITS = st.sampled_from(
    ["元", "块", "天后", "日后", "周后", "个星期后", "天内", "号", "月", "月5号", "期", "年后", ""]
)


@PROPS
@given(
    parts=st.lists(st.tuples(_NUMERALS, _UNITS), min_size=1, max_size=4),
    verb=st.sampled_from(["还", "我还", "已还", "分", "过", "下个月", ""]),
)
def test_numbers_and_offsets_of_any_size_never_raise(
    nlu: Understander, parts: list[tuple[str, str]], verb: str
) -> None:
    text = verb + "".join(n + u for n, u in parts)
    u = nlu.understand(text, now=NOW)
    amount = u.entities.amount
    assert amount is None or 0 < amount <= ent.MAX_AMOUNT
    json.dumps(u.to_json_dict(), ensure_ascii=False).encode("utf-8")


@PROPS
@given(text=st.text(alphabet=st.characters(exclude_categories=()), max_size=200))
def test_any_str_even_with_lone_surrogates_never_raises(nlu: Understander, text: str) -> None:
    u = nlu.understand(text, now=NOW)
    # What it answers can always be written out (the CLI, the audit): no lone surrogate left.
    json.dumps(u.to_json_dict(), ensure_ascii=False).encode("utf-8")


# Every kind of code point: lone surrogates (Cs), controls, format characters (bidi marks),
# combining marks, private use, unassigned and noncharacters.
_ANY_CODE_POINT = st.characters(codec=None, exclude_categories=())
_NASTY = st.sampled_from(
    ["\x00", "\ud800", "\udfff", "\u202e", "\u200f", "\u0301", "\ufeff", "\U000e0001", "\ufffe"]
)


@PROPS
@given(
    text=st.lists(st.one_of(_ANY_CODE_POINT, _NASTY, st.sampled_from(["退订", "明天还", "T"])))
    .map("".join)
    .filter(lambda t: len(t) <= 400)
)
def test_any_code_point_mix_never_raises(nlu: Understander, text: str) -> None:
    u = nlu.understand(text, now=NOW)
    assert u.intents
    json.dumps(u.to_json_dict(), ensure_ascii=False).encode("utf-8")


_DAY_WORDS = st.sampled_from(
    ["明天", "下个月", "周五", "双十一", "国庆后", "晚上", "tmr", "号", "月", "天后", "周后", "天内",
     "过", "前", "后", "年", "点前", "期", "分", "万", "w", "k", "元", "-", ".", " ", "尾号"]
)  # fmt: skip


@PROPS
@given(
    parts=st.lists(st.one_of(_NUMERALS, _DAY_WORDS), min_size=1, max_size=8),
    offset=st.integers(min_value=-800, max_value=800),
)
def test_entities_are_always_within_bounds(parts: list[str], offset: int) -> None:
    today = NOW.date() + timedelta(days=offset)
    everything = frozenset(Intent) - {Intent.UNKNOWN}
    e, _spans = ent.resolve(ent.read("".join(parts)), everything, today)
    assert e.amount is None or 0 < e.amount <= ent.MAX_AMOUNT
    for d in [e.date, *(e.date_range or ())]:
        assert d is None or abs((d - today).days) <= MAX_OFFSET_DAYS
    assert e.installments is None or 2 <= e.installments <= 60
    if e.date_range is not None:
        assert e.date_range[0] <= e.date_range[1]


# Noise a reply may carry around its stop request: other words, digits, emoji, punctuation,
# spaces and invisible characters. Never a Latin word (a T after "table" is not a stop by
# design), nor 【】 (a signature starts a quoted reminder), nor =<>/ (code).
_NOISE_CHARS = "你好我们他的是在这那个钱还了吧吗呢啊哦嗯行对0123456789,.!?~ 。，！？"
_INVISIBLE = ["😡", "👍", "\u200b", "\u202e", "\u0301", "\ufe0f", "\t", "\n", "\u3000", "\x00"]
_NOISE = st.text(alphabet=st.sampled_from([*_NOISE_CHARS, *_INVISIBLE]), max_size=60)
_STOP_REQUESTS = st.sampled_from(
    ["退订", "TD", "T", "t", "STOP", "拒收", "别再发了", "不要再联系我", "拉黑", "unsubscribe",
     "don't text me", "取消订阅", "别发了", "ＴＤ"]
)  # fmt: skip


@PROPS
@given(before=_NOISE, word=_STOP_REQUESTS, after=_NOISE, gap=st.sampled_from([" ", ",", "\n"]))
def test_stop_survives_any_surrounding_noise(
    nlu: Understander, before: str, word: str, after: str, gap: str
) -> None:
    u = nlu.understand(before + gap + word + gap + after, now=NOW)
    assert u.intent == Intent.STOP, (before, word, after, u.explain.normalized)


@PROPS
@given(
    before=st.text(alphabet=_ANY_CODE_POINT, max_size=60),
    word=st.sampled_from(["退订", "别再发了", "拉黑", "不要再联系我", "拒收", "取消订阅"]),
    after=st.text(alphabet=_ANY_CODE_POINT, max_size=60),
    gap=st.sampled_from([" ", ",", "\n", "。"]),
)
def test_a_chinese_stop_survives_any_code_points_around_it(
    nlu: Understander, before: str, word: str, after: str, gap: str
) -> None:
    # Any characters at all, Latin included: the Chinese opt-out words have no letter to glue.
    u = nlu.understand(before + gap + word + gap + after, now=NOW)
    assert u.intent == Intent.STOP, (before, word, after, u.explain.normalized)

"""Property tests: understanding never fails, and a stop request is never missed."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intents import Intent, Understander
from tests.nlu.conftest import NOW

PROPS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
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

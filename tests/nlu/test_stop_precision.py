"""Stop: recognised in every spelling, never read into links, adverts, code or English words.

Invented examples. The rule layer is checked on its own (no stop rule may fire on the
non-stop texts) and end to end where the rules decide.
"""

from __future__ import annotations

import pytest

from intents import Intent, Understander
from intents.data import DATA_DIR
from intents.normalize import Normalizer
from intents.rules import Rules, load_rules
from tests.nlu.conftest import NOW


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_rules(DATA_DIR / "rules.yaml")


def _stop_hits(rules: Rules, text: str) -> list[str]:
    norm = Normalizer(rules.typos)(text)
    hits, _ = rules.match(norm.text, norm.compact)
    return [f"{h.rule}:{h.match}" for h in hits if h.intent == Intent.STOP]


STOPS = [
    "STOP（别发了）",  # parentheses holding Chinese are a person's, not a call
    "stop! 别发了 app.stop();",
    "ＴＤ",
    "ｔｄ",
    "t d",
    "T.D",
    "退 订",
    "退  订 谢谢",
    "tuiding",
    "tui ding",
    "bie fa le",
    "bie zai fa le",
    "la hei",
    "STOP",
    "stop",
    "Stop!",
    "unsubscribe",
    "don't text me",
    "dont text me anymore",
    "please stop texting me",
    "no more messages",
    "leave me alone",
    "别再发了",
    "别发了",
    "拉黑",
    "已拉黑",
    "好的 T",
    "T谢谢",
    "回T",
    "退订回T",  # typed alone it is the borrower's
    "別再發了",
    "别再发了 【某某商城】双11大促全场五折，点 t.cn/AbC123 回T退订",  # own words + advert
    "退订 https://t.cn/abc",
    "STOP. 【某店】new coupons https://x.co/a reply STOP to opt out",
]


@pytest.mark.parametrize("text", STOPS)
def test_every_spelling_of_stop(nlu: Understander, text: str) -> None:
    u = nlu.understand(text, now=NOW)
    assert u.intent == Intent.STOP, (text, u.explain.normalized, u.explain.rules)


NOT_STOPS_BY_RULES = [
    "t.cn/AbC123",
    "https://t.cn/xyz",
    "http://x.co/t",
    "看看这个 t.cn/Qw3rT",
    "www.shop.com/unsubscribe?id=t",
    "【某某商城】双11大促全场五折 点击t.cn/AbC123 退订回T",
    "【优选超市】年货节满300减50，戳 https://t.cn/xyz 回TD退订",
    "【某某金服】新人专享红包已到账，拒收请回R",
    "限时秒杀 低至3折 回复T退订",
    "Big SALE 50% off! Reply STOP to unsubscribe",
    "DROP TABLE t;",
    "SELECT * FROM t WHERE x='T'",
    "<script>alert('t')</script>",
    "<t>",
    "x = t",
    "t-shirt",
    "I can't pay",
    "don't",
    "I will pay tonight",
    "that's it",
    "what's that",
    "table t where",
    # Code: a call's parentheses are gone from the compact text the spacing rule reads.
    "timer.stop(); 又崩了",
    "调用stop()就退出了",
    "我在调试 stop() 这个函数",
    "app.stop(0);",
]


@pytest.mark.parametrize("text", NOT_STOPS_BY_RULES)
def test_no_stop_rule_fires_on_links_adverts_code_or_english(rules: Rules, text: str) -> None:
    assert _stop_hits(rules, text) == []


@pytest.mark.parametrize(
    "text",
    [
        "t.cn/AbC123",
        "https://t.cn/xyz",
        "http://x.co/t",
        "【某某商城】双11大促全场五折 点击t.cn/AbC123 退订回T",
        "【优选超市】年货节满300减50，戳 https://t.cn/xyz 回TD退订",
        "SELECT * FROM t WHERE x='T'",
        "<script>alert(1)</script>",
        "明天还 t.cn/x",
    ],
)
def test_no_false_stop_end_to_end(nlu: Understander, text: str) -> None:
    u = nlu.understand(text, now=NOW)
    assert not u.has(Intent.STOP), (text, u.explain.normalized, u.intents)


# Short Latin texts no rule reads as stop (test above): the model must not either (it once
# learnt "a few Latin letters" from T, TD and STOP; code and links in its training data).
@pytest.mark.parametrize("text", ["DROP TABLE t;", "<t>", "t-shirt", "I will pay tonight"])
def test_no_model_alone_stop_on_short_latin_text(nlu: Understander, text: str) -> None:
    assert not nlu.understand(text, now=NOW).has(Intent.STOP)


def test_an_advert_opt_out_line_is_kept_as_quoted_not_lost(nlu: Understander) -> None:
    u = nlu.understand("【某某商城】全场五折 t.cn/a 回T退订", now=NOW)
    assert u.explain.stripped_quote is not None and "回t退订" in u.explain.stripped_quote


# Blocking the number or filing it as spam says "no more messages" by deed.
@pytest.mark.parametrize(
    "text",
    [
        "号码已经拉进黑名单了",
        "我把你们标记为骚扰电话了",
        "已设置成垃圾短信",
        "关闭提醒",
        "I blocked this number",
        "reported you as spam",
        "qing bie zai lian xi wo",
    ],
)
def test_blocking_or_reporting_as_spam_is_a_stop(nlu: Understander, text: str) -> None:
    assert nlu.understand(text, now=NOW).intent is Intent.STOP


@pytest.mark.parametrize(
    "text", ["黑名单上有我吗", "这是spam吗", "block chain 技术", "我要举报你们"]
)
def test_words_about_blocking_are_not_a_stop(rules: Rules, text: str) -> None:
    hits, _ = rules.match(text.lower(), text.lower())
    assert not [h for h in hits if h.intent is Intent.STOP]


@pytest.mark.parametrize("text", ["T恤多少钱", "买了件T恤", "我在TD银行还了"])
def test_t_and_td_inside_words_are_no_opt_out(rules: Rules, text: str) -> None:
    hits, _ = rules.match(text.lower(), text.lower())
    assert not [h for h in hits if h.intent is Intent.STOP]


def test_a_forwarded_bank_bill_is_not_the_borrowers_promise(nlu: Understander) -> None:
    u = nlu.understand(
        "【某某银行】您的账单已出，本期应还3200元，最后还款日12月8日。退订回T", now=NOW
    )
    assert u.intent is Intent.UNKNOWN
    assert u.entities.date is None and u.entities.amount is None


# DATA.md's adjudicated stop rule, one invented reply per row of its table: any request, in
# any words or tone, to stop or reduce messaging or contacting this number is a stop ...
GUIDELINE_STOPS = [
    "以后别给我发这种东西了",
    "这些提醒我不需要",
    "有完没完啊你们",
    "一天发四条，过分了吧",
    "已经举报到12321了",
    "再发我就报警",
    "你们找错人了，别再发了",
    "别再打我电话了",
    "早就还清了还发什么发",
    "bie zai lianxi wo le",
    "please stop",
    "STOP!!",
    "S T O P",
    "no more texts pls",
    "咪再发啦",
]
# ... and only that: questions about opting out, other services, a T taken back, requests
# about other people, pasted footers and words that contain stop are not.
GUIDELINE_NOT_STOPS_BY_RULES = [
    "回T以后还会影响我征信吗",
    "退订了是不是就不用还了",
    "那个会员怎么退订",
    "刚才的T是手滑，不是退订",
    "别再打电话给我爸妈了",
    "please stop calling my parents",
    "I'm at the bus stop right now",
    "can't stop thinking about it, will pay friday",
    "Your code is 1234. Reply STOP to unsubscribe.",
    "引用：“回T退订” 我想问还差多少",
]


@pytest.mark.parametrize("text", GUIDELINE_STOPS)
def test_the_guideline_stops_are_stops(nlu: Understander, text: str) -> None:
    u = nlu.understand(text, now=NOW)
    assert u.has(Intent.STOP), (text, u.explain.normalized, u.intents)


@pytest.mark.parametrize("text", GUIDELINE_NOT_STOPS_BY_RULES)
def test_the_guideline_look_alikes_fire_no_stop_rule(rules: Rules, text: str) -> None:
    assert _stop_hits(rules, text) == []

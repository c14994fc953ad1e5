"""Intents, table-driven per intent, with the hard cases the product must get right."""

from __future__ import annotations

import pytest

from intents import Intent, Understanding

CASES: dict[str, list[str]] = {
    "promise_to_pay": ["明天还", "我没说不还", "又没说不还，下周就还", "发了工资就还", "会还的别催",
                       "好的我明天还", "放心 元旦前还清", "今晚就转过去八百块钱"],
    "already_paid": ["昨天已经还了", "周五就扣了", "早结清了你们查下", "刚用支付宝还了两千", "已还款"],
    "dispute": ["我没借过这笔钱", "金额不对", "利息不合法", "有人冒用我身份证借的", "我要投诉你们暴力催收",
                "凭什么多收我800"],
    "hardship": ["不是不想还是真没钱", "失业了", "住院了实在没办法", "生意赔了一分钱都没有", "工资拖欠三个月了"],
    "request_plan": ["能分期吗", "宽限几天", "能减免利息吗", "分三期行不行", "能不能晚几天还"],
    "refuse_to_pay": ["不还", "爱咋咋地", "要钱没有要命一条", "随便你们告", "就不还了"],
    "stop": ["退订", "TD", "T", "别发了", "不要再联系我", "STOP", "拒收", "ｔ ｄ", "退訂", "请勿再发此类短信"],
    "wrong_number": ["打错了", "我不是张三", "这号码我刚换的", "我是他老婆，他出差了", "发错人了吧"],
    "request_human": ["转人工", "让客服打给我", "我要跟真人说", "有没有人工客服"],
    "ask_info": ["还差多少", "怎么还", "你们是正规的吗", "哪笔借款", "用支付宝能还吗", "什么时候扣款"],
    "abuse": ["滚", "傻X", "你们全家不得好死", "你算个什么东西"],
    "acknowledge": ["好的", "收到", "嗯", "知道了", "👌", "ok"],
    "unknown": ["哈哈哈", "今晚吃啥", "asdf", "老婆我到楼下了"],
}  # fmt: skip


@pytest.mark.parametrize(("intent", "text"), [(i, t) for i, texts in CASES.items() for t in texts])
def test_primary_intent(understand, intent: str, text: str) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.intent == intent, (u.intents, u.explain.rules)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("明天还500，别再发了", {"stop", "promise_to_pay"}),
        ("已经还了别再发了", {"stop", "already_paid"}),
        ("我失业了能不能分期", {"hardship", "request_plan"}),
        ("滚 别发了", {"stop", "abuse"}),
        ("打错了，别再发了", {"stop", "wrong_number"}),
        # Harassing me "again": a conditional threat is a stop too (stop.leave_alone).
        ("你们再敢烦我 我让你们好看", {"stop", "abuse"}),
    ],
)
def test_several_intents(understand, text: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert {s.name.value for s in u.intents} >= expected
    if "stop" in expected:
        assert u.intent == Intent.STOP  # stop always leads


def test_scores_are_sorted_probabilities(understand) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand("我失业了能不能分期")
    scores = [s.score for s in u.intents]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert u.intents[0].name == u.intent


def test_refusal_with_a_reason_is_the_reason(understand) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand("没钱，还不了")
    assert u.intent == Intent.HARDSHIP
    assert not u.has(Intent.REFUSE_TO_PAY)


def test_negation_cancels_a_rule_and_says_so(understand) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand("我没说不还")
    assert not u.has(Intent.REFUSE_TO_PAY)
    assert any(h.intent == Intent.PROMISE_TO_PAY for h in u.explain.rules)


def test_explanation_names_rules_spans_and_model(understand) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand("明天还500")
    assert any(h.rule.startswith("promise.") for h in u.explain.rules)
    assert {s.kind for s in u.explain.spans} == {"date", "amount"}
    assert set(u.explain.model) >= {"promise_to_pay", "stop"}
    assert u.explain.normalized == "明天还500"


def test_repeated_texts_are_served_from_cache(nlu) -> None:  # type: ignore[no-untyped-def]
    from tests.nlu.conftest import NOW

    first = nlu.understand("好的好的收到", now=NOW)
    again = nlu.understand("好的好的收到", now=NOW)
    assert again.explain.cached and again.intents == first.intents


def test_an_answer_is_kept_for_its_text_and_the_borrowers_day(nlu) -> None:  # type: ignore[no-untyped-def]
    from datetime import date, timedelta

    from tests.nlu.conftest import NOW

    text = "明天还一千五"  # 明天 is read against the borrower's day
    first = nlu.understand(text, now=NOW, tz="Asia/Shanghai")
    again = nlu.understand(text, now=NOW, tz="Asia/Shanghai")
    later = nlu.understand(text, now=NOW + timedelta(hours=3), tz="Asia/Shanghai")
    assert not first.explain.cached and again.explain.cached
    assert later is again  # same text, same day there: the kept answer
    assert later.entities.date == date(2026, 12, 3) and later.entities.amount == 1500

    # Half past midnight in Shanghai is the next day there: 明天 moves with it.
    midnight = NOW + timedelta(hours=14, minutes=30)
    next_day = nlu.understand(text, now=midnight, tz="Asia/Shanghai")
    assert next_day.entities.date == date(2026, 12, 4)
    # The same instant is still 2 December in London (16:30 there): not Shanghai's answer.
    london = nlu.understand(text, now=midnight, tz="Europe/London")
    assert london.entities.date == date(2026, 12, 3)
    # Another text is never served another's answer, even one that normalises alike.
    variant = nlu.understand("明天還一千五", now=NOW, tz="Asia/Shanghai")
    assert variant is not again and variant.text == "明天還一千五"

    nlu.clear_cache(analyses=False)  # answers forgotten, analyses kept
    rebuilt = nlu.understand(text, now=NOW, tz="Asia/Shanghai")
    assert rebuilt is not again and rebuilt == again and rebuilt.explain.cached
    nlu.clear_cache()
    assert not nlu.understand(text, now=NOW, tz="Asia/Shanghai").explain.cached


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\x00\x00",
        "\x07\x1b[31m",
        "😀😀😀",
        "还" * 10_000,
        "abc 你好 123 ¥ ①②",
        "\ud7ff\ue000",
        "【】",
        "回复：【",
    ],
)
def test_bad_input_never_raises(understand, text: str) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand(text)
    assert u.intents
    assert u.text == text


@pytest.mark.parametrize("text", ["", "   ", "\x00", "😀😀😀"])
def test_nothing_meant_is_unknown(understand, text: str) -> None:  # type: ignore[no-untyped-def]
    assert understand(text).intent == Intent.UNKNOWN


def test_json_shape(understand) -> None:  # type: ignore[no-untyped-def]
    d = understand("明天还500").to_json_dict()
    assert set(d) == {"text", "intent", "intents", "entities", "explain"}
    assert d["entities"]["date"] == "2026-12-03"
    assert d["entities"]["amount"] == 500
    assert d["entities"]["date_range"] is None
    assert d["entities"]["installments"] is None


def test_harassing_my_family_again_is_no_stop(understand) -> None:  # type: ignore[no-untyped-def]
    u: Understanding = understand("你们再骚扰我爸妈试试")
    assert "stop.leave_alone" not in [h.rule for h in u.explain.rules]

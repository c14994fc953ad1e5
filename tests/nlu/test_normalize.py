from __future__ import annotations

import pytest

from intents.data import RULES_FILE
from intents.normalize import Normalizer
from intents.rules import load_rules


@pytest.fixture(scope="module")
def normalize() -> Normalizer:
    return Normalizer(load_rules(RULES_FILE).typos)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("ＴＤ", "td"),  # full-width → half-width, lower case
        ("我會還錢", "我会还钱"),  # traditional → simplified
        ("t d", "td"),  # spacing tricks between letters
        ("S T O P", "stop"),
        ("退 订", "退订"),  # spaces between Chinese characters
        ("明天还！！！", "明天还!"),  # repeated punctuation
        ("好的？？？？", "好的?"),
        ("明天环款", "明天还款"),  # homophone typos
        ("后天换钱", "后天还钱"),
        ("我以经还了", "我已经还了"),
        ("别在发了", "别再发了"),
        ("👍🏻", "👍"),  # skin tones carry no meaning
        ("a\x00b\x07c", "abc"),  # control characters and NUL
        ("  多   空格  ", "多空格"),
        ("mingtian huan", "明天还"),  # pinyin of key words
    ],
)
def test_normalises(normalize: Normalizer, raw: str, text: str) -> None:
    assert normalize(raw).text == text


def test_compact_drops_spaces_and_punctuation(normalize: Normalizer) -> None:
    assert normalize("t.d!").compact == "td"


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("回复：【XX金融】张先生，您的借款3200元已逾期5天，请及时还款。好的明天还", "好的明天还"),
        ("【速借花】您的账单已逾期，请及时处理 知道了周末还", "知道了周末还"),
        ("明天还 回复:【XX金融】您的借款已逾期", "明天还"),
        ("回复：【XX金融】您的借款3200元已逾期5天 这是哪个app的？", "这是哪个app的?"),
    ],
)
def test_strips_quoted_reminder(normalize: Normalizer, raw: str, kept: str) -> None:
    n = normalize(raw)
    assert n.text == kept
    assert n.stripped_quote is not None
    assert "3200" not in n.text


def test_no_quote_no_stripping(normalize: Normalizer) -> None:
    assert normalize("明天还3200").stripped_quote is None


def test_caps_analysed_length(normalize: Normalizer) -> None:
    assert len(normalize("还" * 10_000).text) <= 1000

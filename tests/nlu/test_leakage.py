"""`smsbot intents check` keeps evaluation sentences out of training data and rules."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from intents.data import DATA_DIR, check

HEADER = 'now: "2026-12-02T10:00:00+08:00"\ntz: Asia/Shanghai\nexamples:\n'


def _data(tmp_path: Path, *, train: str, blind: str, rules_extra: str = "") -> Path:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "mixed.yaml").write_text(HEADER + train, encoding="utf-8")
    (tmp_path / "heldout.yaml").write_text(
        HEADER + "  - text: 周五还500\n    intents: [promise_to_pay]\n    date: 2026-12-04\n"
        "    amount: 500\n",
        encoding="utf-8",
    )
    (tmp_path / "blind9.yaml").write_text(HEADER + blind, encoding="utf-8")
    rules = (DATA_DIR / "rules.yaml").read_text(encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(rules + rules_extra, encoding="utf-8")
    shutil.copy(DATA_DIR / "userdict.txt", tmp_path / "userdict.txt")
    return tmp_path


def test_an_evaluation_sentence_in_training_data_is_reported_however_spelled(
    tmp_path: Path,
) -> None:
    data = _data(
        tmp_path,
        train="  - text: 下个礼拜三 一定把钱还上！！\n    intents: [promise_to_pay]\n",
        blind="  - text: 下個禮拜三一定把錢還上\n    intents: [promise_to_pay]\n",
    )
    problems = [str(p) for p in check(data)]
    assert len(problems) == 1
    assert problems[0].startswith(f"{data / 'blind9.yaml'}:4: ")
    assert "is also a training example at" in problems[0]
    assert f"{data / 'train' / 'mixed.yaml'}:4" in problems[0]


def test_an_evaluation_sentence_in_a_rule_pattern_or_why_is_reported(tmp_path: Path) -> None:
    rule = (
        "    - id: plan.test_copy\n"
        "      pattern: '能不能再宽限我半个月|分期'\n"
        "      why: 老板说能不能先缓一缓再说\n"
    )
    rules = (DATA_DIR / "rules.yaml").read_text(encoding="utf-8")
    assert "  request_plan:\n" in rules
    data = _data(
        tmp_path,
        train="  - text: 想分期\n    intents: [request_plan]\n",
        blind="  - text: 能不能再宽限我半个月？\n    intents: [request_plan]\n"
        "  - text: 老板说能不能先缓一缓再说\n    intents: [request_plan]\n",
    )
    (data / "rules.yaml").write_text(
        rules.replace("  request_plan:\n", "  request_plan:\n" + rule, 1), encoding="utf-8"
    )
    problems = [str(p) for p in check(data)]
    assert any(":4: " in p and "pattern of rule plan.test_copy" in p for p in problems)
    assert any(":6: " in p and "why of rule plan.test_copy" in p for p in problems)
    assert all(re.search(r"rules\.yaml:\d+ ", p) for p in problems)  # the rule's own line
    assert len(problems) == 2


def test_lexicon_words_and_hard_safety_patterns_are_not_leaks(tmp_path: Path) -> None:
    # 退订 is the opt-out lexicon itself (too short to be a copied sentence), and a hard
    # rule keeps every opt-out phrase even when a blind set happens to hold one.
    data = _data(
        tmp_path,
        train="  - text: 想分期\n    intents: [request_plan]\n",
        blind="  - text: 退订\n    intents: [stop]\n  - text: 取消订阅\n    intents: [stop]\n",
    )
    assert [str(p) for p in check(data)] == []


def test_the_project_rules_quote_no_evaluation_sentence() -> None:
    assert not [p for p in check(DATA_DIR) if "never feed" in p.message]

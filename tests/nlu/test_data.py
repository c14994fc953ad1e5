"""The project's labelled data: validity, size, and the accuracy targets on the held-out set."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from common.errors import ConfigError
from intents import Intent, Understander
from intents.data import DATA_DIR, check, load_heldout, load_training
from intents.evaluate import evaluate
from intents.rules import load_rules

FIXTURES = Path(__file__).parent / "fixtures"


def test_project_data_is_clean() -> None:
    assert [str(p) for p in check(DATA_DIR)] == []


def test_enough_examples_per_intent() -> None:
    examples = load_training()
    assert len(examples) >= 7000
    train = Counter(i for e in examples for i in e.intents[:1])
    # Any label, not only the primary: a threat that is also a stop (再发弄死你) counts for both.
    held = Counter(i for e in load_heldout().examples for i in e.intents)
    for intent in Intent:
        assert train[intent] >= 200, intent
        assert held[intent] >= 20, intent
    # Replies that carry several intents teach the model to find the second one.
    assert sum(len(e.intents) > 1 for e in examples) >= 0.15 * len(examples)


@pytest.mark.parametrize("name", ["heldout.yaml", "blind.yaml", "blind2.yaml"])
def test_evaluation_targets(nlu: Understander, name: str) -> None:
    # Regression floors, not targets: these sets have been looked at (README), so their
    # figures overstate unseen text; the first-look figures of blind3 are the honest ones.
    heldout = load_heldout(DATA_DIR / name)
    r = evaluate(nlu, heldout.examples, heldout.now, heldout.tz)
    assert r.accuracy >= 0.92
    assert r.macro_f1 >= 0.94
    assert r.recall(Intent.STOP) == 1.0
    # A false stop is the safe side of the error (the borrower is texted no more). DATA.md's
    # adjudicated stop rule ("when in doubt, stop") and the F2 threshold moved the balance
    # further there: heldout 0.89 → 0.83, blind2 1.00 → 0.77 (咋还催 after a payment, a wrong
    # person who asks "are you mistaken?" — the guideline's doubtful side).
    assert r.precision(Intent.STOP) >= 0.75
    assert r.date.score >= 0.90
    assert r.amount.score >= 0.95


def test_check_reports_every_problem_with_file_and_line() -> None:
    problems = [str(p) for p in check(FIXTURES / "broken")]
    text = "\n".join(problems)
    assert "mixed.yaml:4: duplicate of" in text
    assert "mixed.yaml:5: intents.0: unknown intent 'promise_later'" in text
    assert "mixed.yaml:9: 'td' is labelled [acknowledge] here but 'ＴＤ' is labelled [stop]" in text
    assert (
        "mixed.yaml:11: intents: Value error, intents are listed in DATA.md's order: [stop, promise_to_pay]"
        in text
    )
    assert "heldout.yaml:4: '明天还' is also a training example" in text


def test_invalid_rules_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "intents:\n  stop:\n    - id: s1\n      pattern: '(unclosed'\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        load_rules(bad)
    assert f"{bad}:4: intents.stop.0.pattern: Value error, invalid regular expression" in str(
        err.value
    )


def test_unknown_rule_key_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "intents:\n  stop:\n    - id: s1\n      pattern: x\n      wieght: 1\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"rules.yaml:5: intents.stop.0.wieght: Extra inputs"):
        load_rules(bad)


def test_invalid_data_never_replaces_a_loaded_model(tmp_path: Path, nlu: Understander) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    (data / "train" / "stop.yaml").write_text("intent: stopp\nexamples: [x]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"stop\.yaml:1: intent: unknown intent 'stopp'"):
        Understander.load(data)
    assert nlu.understand("TD", now=load_heldout().now).intent == Intent.STOP


def test_model_cache_is_keyed_by_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    cache = tmp_path / "cache"
    Understander.load(data, cache_dir=cache)
    Understander.load(data, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1  # the second load reused it
    with (data / "train" / "unknown.yaml").open("a", encoding="utf-8") as fh:
        fh.write('  - "天气真好出去玩"\n')
    Understander.load(data, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2  # new data, new model


def test_a_yml_training_file_is_reported_not_ignored(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    (data / "train" / "extra.yml").write_text("intent: stop\nexamples: [别发了]\n", "utf-8")
    problems = [str(p) for p in check(data)]
    assert problems == [f"{data / 'train' / 'extra.yml'}: not read: training files end in .yaml"]


def test_cached_models_unused_for_a_month_are_pruned(tmp_path: Path) -> None:
    import os
    import time

    from intents.nlu import _prune

    kept, recent, stale = (tmp_path / f"intent-model-{n}.npz" for n in ("a", "b", "c"))
    for f in (kept, recent, stale):
        f.write_bytes(b"x")
    month_ago = time.time() - 31 * 24 * 3600
    os.utime(stale, (month_ago, month_ago))
    os.utime(kept, (month_ago, month_ago))  # the one just written is never pruned
    _prune(kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "intent-model-a.npz",
        "intent-model-b.npz",
    ]

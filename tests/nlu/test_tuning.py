"""The model's optimiser, the cross-validated decisions, and the combination policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, sparse

from intents import classifier, tuning
from intents.combine import PRIORITY, decide
from intents.model import Intent


@dataclass
class Chosen:
    thresholds: dict[Intent, float] = field(default_factory=lambda: dict.fromkeys(Intent, 0.5))
    rules_help: frozenset[Intent] = frozenset()
    floor: float = 0.6


def test_lbfgs_reaches_scipys_optimum() -> None:
    rng = np.random.default_rng(1)
    x = sparse.random(300, 80, density=0.1, random_state=2, format="csr")
    y = (rng.random((300, 3)) < 0.3).astype(float)
    w, b = classifier.fit(x, y, lam=1e-3)

    def loss(params: np.ndarray) -> float:
        ww, bb = params[:240].reshape(80, 3), params[240:]
        z = x @ ww + bb
        pos = np.maximum(y.sum(axis=0), 1.0)
        sw = np.where(y > 0, (300 / pos) ** classifier.BALANCE / 2, 1.0)
        return float((sw * (np.logaddexp(0, z) - y * z)).sum() / 300 + 0.5e-3 * (ww * ww).sum())

    ref = optimize.minimize(loss, np.zeros(243), method="L-BFGS-B")
    ours = loss(np.concatenate([w.ravel(), b]))
    assert ours == pytest.approx(ref.fun, rel=1e-4)


def test_thresholds_maximise_f1_and_rules_count_only_where_they_help() -> None:
    # Intent 0: the model separates at 0.3; rules add nothing. Intent 1: the model is blind
    # but a rule fires exactly on the positives, so its rules must be kept.
    n = 200
    y = np.zeros((n, 2))
    y[:50, 0] = 1
    y[100:140, 1] = 1
    probs = np.full((n, 2), 0.1)
    probs[:50, 0] = 0.35
    probs[:, 1] = 0.2
    rules = np.zeros((n, 2))
    rules[100:140, 1] = 0.9
    rules[:20, 0] = 0.9
    hard = np.zeros((n, 2), dtype=bool)
    labels = [Intent.PROMISE_TO_PAY, Intent.DISPUTE]
    primary = [Intent.PROMISE_TO_PAY if r < 50 else Intent.DISPUTE if 100 <= r < 140 else Intent.UNKNOWN
               for r in range(n)]  # fmt: skip

    def policy(m, rs, h, t):  # type: ignore[no-untyped-def]
        return decide(m, rs, h, t, {})

    tuned = tuning.tune(probs, y, rules, hard, labels, primary, policy)
    assert 0.1 < tuned.thresholds[Intent.PROMISE_TO_PAY] <= 0.35
    assert Intent.DISPUTE in tuned.rules_help and Intent.PROMISE_TO_PAY not in tuned.rules_help
    assert tuned.figures[Intent.DISPUTE].f1_rules == 1.0
    assert tuned.accuracy == 1.0


def test_stops_threshold_weighs_recall_four_times() -> None:
    # 40 positives: 30 score 0.6, 10 score 0.2, which 40 negatives share. F1 keeps the
    # threshold above 0.2 (precision wins); F2 goes down to take the last 10 positives too.
    score = np.array([0.6] * 30 + [0.2] * 10 + [0.2] * 40)
    truth = np.array([True] * 40 + [False] * 40)
    none = np.zeros(80, dtype=bool)
    t1, _ = tuning._best_threshold(score, truth, none)
    t2, f2 = tuning._best_threshold(score, truth, none, tuning.STOP_BETA)
    assert 0.2 < t1 <= 0.6 and t2 <= 0.2
    assert f2 == pytest.approx(5 * 40 / (4 * 40 + 80))


def test_hard_rules_decide_and_labels_follow_the_flows_order() -> None:
    model = {
        Intent.PROMISE_TO_PAY: 0.9,
        Intent.ASK_INFO: 0.8,
        Intent.DISPUTE: 0.55,
        Intent.STOP: 0.01,
    }
    got = decide(model, {Intent.STOP: 1.0}, {Intent.STOP}, Chosen(), {})
    assert [i for i, _ in got] == [
        Intent.STOP,
        Intent.DISPUTE,
        Intent.PROMISE_TO_PAY,
        Intent.ASK_INFO,
    ]
    assert sorted(PRIORITY, key=PRIORITY.__getitem__)[0] is Intent.STOP


def test_suppressed_intents_give_way_and_unknown_wins_only_when_surer() -> None:
    model = {
        Intent.REFUSE_TO_PAY: 0.9,
        Intent.HARDSHIP: 0.7,
        Intent.UNKNOWN: 0.6,
        Intent.ACKNOWLEDGE: 0.6,
    }
    suppress = {
        Intent.REFUSE_TO_PAY: frozenset({Intent.HARDSHIP}),
        Intent.ACKNOWLEDGE: frozenset({Intent.HARDSHIP}),
    }
    got = decide(model, {}, set(), Chosen(), suppress)
    assert [i for i, _ in got] == [Intent.HARDSHIP]
    # 啥: a strong "nothing applies" beside a weak question is no question.
    assert decide({Intent.UNKNOWN: 0.95, Intent.ASK_INFO: 0.55}, {}, set(), Chosen(), {}) == []
    # ... but never against a hard rule.
    hard = decide({Intent.UNKNOWN: 0.95}, {Intent.STOP: 1.0}, {Intent.STOP}, Chosen(), {})
    assert [i for i, _ in hard] == [Intent.STOP]


def test_nothing_over_threshold_guesses_above_the_floor_but_never_a_stop() -> None:
    chosen = Chosen()
    assert decide({Intent.ASK_INFO: 0.4}, {}, set(), chosen, {}) == [(Intent.ASK_INFO, 0.4)]
    assert decide({Intent.ASK_INFO: 0.2}, {}, set(), chosen, {}) == []
    assert decide({Intent.STOP: 0.45, Intent.ASK_INFO: 0.05}, {}, set(), chosen, {}) == []


def test_rules_count_beside_the_model_only_where_cross_validation_kept_them() -> None:
    rule = {Intent.ABUSE: 0.9}
    assert decide({Intent.ABUSE: 0.1}, rule, set(), Chosen(), {}) == []
    kept = Chosen(rules_help=frozenset({Intent.ABUSE}))
    assert [i for i, _ in decide({Intent.ABUSE: 0.1}, rule, set(), kept, {})] == [Intent.ABUSE]


def test_training_key_follows_data_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("examples: [好的]", encoding="utf-8")
    first = tuning.training_key([f])
    assert tuning.training_key([f]) == first
    f.write_text("examples: [好的呀]", encoding="utf-8")
    second = tuning.training_key([f])
    assert second != first
    monkeypatch.setattr(classifier, "LAMBDA", classifier.LAMBDA * 2)
    assert tuning.training_key([f]) != second


def test_no_evidence_is_never_a_guess_even_with_a_zero_floor() -> None:
    always_guess = Chosen(floor=0.0)
    assert decide({}, {}, set(), always_guess, {}) == []
    assert [i for i, _ in decide({Intent.ASK_INFO: 0.1}, {}, set(), always_guess, {})] == [
        Intent.ASK_INFO
    ]

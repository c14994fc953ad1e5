"""Every decision threshold of the NLU, chosen by cross-validation on the training files only.

Evaluation sets never choose anything here (DATA.md): thresholds picked on them would make
their figures a measure of the tuning, not of unseen text. Five folds; each fold's model is
trained on the other four and scores the held-out fold, so every training example gets an
out-of-fold probability per intent. From those:

* per intent, the threshold that maximises F1 — for ``stop`` F2, which weighs recall four
  times: DATA.md's rule "when in doubt, stop" (a missed opt-out is unlawful, an extra one
  costs a message), applied to the model's own doubt;
* per intent, whether adding its rules (noisy-or of the strongest rule hit and the model) gives
  a better F1 than the model alone: rules are kept only where they earn it (``rules_help``);
  hard rules (stop, wrong number) always decide, whatever the figures, since a missed opt-out
  is a breach of law rather than an error rate;
* the ``floor``: with no intent over its threshold, the intent with the best ratio of score to
  threshold is still the primary when that ratio reaches the floor, else ``unknown``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intents.classifier import Design, IntentModel, design, fit, predict
from intents.combine import decide
from intents.model import Intent
from intents.normalize import Normalized
from intents.rules import Rules

Decide = Callable[
    [dict[Intent, float], dict[Intent, float], set[Intent], "Tuned"], list[tuple[Intent, float]]
]

FOLDS = 5
# F-beta for stop: recall weighs beta² = 4 times precision (see the module docstring).
STOP_BETA = 2.0
_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)
_FLOORS = np.round(np.arange(0.0, 1.001, 0.05), 3)


@dataclass
class IntentFigures:
    threshold: float
    f1_model: float
    f1_rules: float
    precision: float
    recall: float
    rules_used: bool


@dataclass
class Tuned:
    thresholds: dict[Intent, float]
    rules_help: frozenset[Intent]
    floor: float
    figures: dict[Intent, IntentFigures] = field(default_factory=dict)
    accuracy: float = 0.0  # out-of-fold primary accuracy with everything above applied
    macro_f1: float = 0.0
    # What the figures were measured on, for reports (smsbot intents eval --cv / --rules).
    probs: np.ndarray | None = None
    examples: int = 0


def _fits(
    des: Design, folds: int, seed: int, *, full: bool
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Out-of-fold probabilities, and (when ``full``) the fit on all the data, in threads:
    sparse products release the GIL, so two cores fit 1.4x faster (measured)."""
    n = des.x.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    tests = [order[k::folds] for k in range(folds)]

    def fold(test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        train = np.setdiff1d(order, test)
        return fit(des.x[train], des.y[train])

    probs = np.zeros(des.y.shape)
    with ThreadPoolExecutor(max_workers=max(1, min(folds, os.cpu_count() or 1))) as pool:
        whole = pool.submit(fit, des.x, des.y) if full else None
        for test, (w, b) in zip(tests, pool.map(fold, tests), strict=True):
            probs[test] = predict(des.x[test], w, b)
        return probs, whole.result() if whole is not None else None


def tune(
    probs: np.ndarray,
    y: np.ndarray,
    rule_scores: np.ndarray,
    hard: np.ndarray,
    labels: Sequence[Intent],
    primary: Sequence[Intent],
    decide: Decide,
) -> Tuned:
    """Thresholds, rule use and floor from out-of-fold ``probs`` (see the module docstring).

    ``rule_scores`` (n, labels) is the strongest rule weight per intent, ``hard`` marks hard
    hits; ``decide`` is the combination policy itself (:func:`intents.combine.decide`), so the
    figures measured here are those of the code that runs.
    """
    thresholds: dict[Intent, float] = {}
    rules_help: set[Intent] = set()
    figures: dict[Intent, IntentFigures] = {}
    for j, intent in enumerate(labels):
        truth = y[:, j] > 0
        if not truth.any():
            thresholds[intent] = 0.5
            continue
        beta = STOP_BETA if intent is Intent.STOP else 1.0
        t_model, f_model = _best_threshold(probs[:, j], truth, hard[:, j], beta)
        noisy_or = 1.0 - (1.0 - rule_scores[:, j]) * (1.0 - probs[:, j])
        t_rules, f_rules = _best_threshold(noisy_or, truth, hard[:, j], beta)
        use = f_rules > f_model or bool(hard[:, j].any())
        thresholds[intent] = t_rules if use else t_model
        if use:
            rules_help.add(intent)
        score = noisy_or if use else probs[:, j]
        pred = (score >= thresholds[intent]) | hard[:, j]
        tp = float((pred & truth).sum())
        figures[intent] = IntentFigures(
            threshold=float(thresholds[intent]),
            f1_model=f_model,
            f1_rules=f_rules,
            precision=tp / max(float(pred.sum()), 1.0),
            recall=tp / max(float(truth.sum()), 1.0),
            rules_used=use,
        )
    tuned = Tuned(thresholds, frozenset(rules_help), floor=1.0, figures=figures)
    rows = [
        (
            dict(zip(labels, (float(p) for p in probs[r]), strict=True)),
            {lab: float(rule_scores[r, j]) for j, lab in enumerate(labels) if rule_scores[r, j]},
            {lab for j, lab in enumerate(labels) if hard[r, j]},
        )
        for r in range(len(primary))
    ]
    best = -1.0
    for floor in _FLOORS:
        tuned.floor = float(floor)
        acc = sum(
            (decide(m, rs, h, tuned) or [(Intent.UNKNOWN, 0.0)])[0][0] == want
            for (m, rs, h), want in zip(rows, primary, strict=True)
        ) / max(len(primary), 1)
        if acc > best + 1e-9:
            best, chosen = acc, float(floor)
    tuned.floor = chosen
    tuned.accuracy = best
    tuned.macro_f1 = _macro_f1(rows, y, labels, tuned, decide)
    return tuned


def _best_threshold(
    score: np.ndarray, truth: np.ndarray, hard: np.ndarray, beta: float = 1.0
) -> tuple[float, float]:
    """The threshold of the best F-beta (and that F-beta) over the grid."""
    b2 = beta * beta
    best_t, best_f = 0.5, -1.0
    for t in _GRID:
        pred = (score >= t) | hard
        tp = float((pred & truth).sum())
        f1 = (1 + b2) * tp / max(float(pred.sum() + b2 * truth.sum()), 1.0)
        # Ties go to the threshold nearer 0.5: a plateau's edge is where noise decides.
        if f1 > best_f + 1e-9 or (abs(f1 - best_f) <= 1e-9 and abs(t - 0.5) < abs(best_t - 0.5)):
            best_t, best_f = float(t), f1
    return best_t, best_f


def _macro_f1(
    rows: list[tuple[dict[Intent, float], dict[Intent, float], set[Intent]]],
    y: np.ndarray,
    labels: Sequence[Intent],
    tuned: Tuned,
    decide: Decide,
) -> float:
    return macro_f1(
        (
            {i for i, _ in decide(m, rs, h, tuned)} or {Intent.UNKNOWN},
            {lab for j, lab in enumerate(labels) if y[r, j]},
        )
        for r, (m, rs, h) in enumerate(rows)
    )


def macro_f1(pairs: Iterable[tuple[AbstractSet[Intent], AbstractSet[Intent]]]) -> float:
    """Macro-F1 over the intents present in the truth, from (predicted, true) intent sets."""
    tp = dict.fromkeys(Intent, 0)
    fp = dict.fromkeys(Intent, 0)
    fn = dict.fromkeys(Intent, 0)
    for got, want in pairs:
        for lab in Intent:
            tp[lab] += lab in got and lab in want
            fp[lab] += lab in got and lab not in want
            fn[lab] += lab in want and lab not in got
    f1s = [2 * tp[i] / (2 * tp[i] + fp[i] + fn[i]) for i in Intent if tp[i] + fn[i]]
    return sum(f1s) / len(f1s) if f1s else 0.0


def train(
    texts: Sequence[Normalized],
    targets: Sequence[Sequence[Intent]],
    featurize: Callable[[Normalized], list[str]],
    rules: Rules,
    *,
    folds: int = FOLDS,
) -> tuple[IntentModel, Tuned]:
    """The model and its decisions: cross-validation first, then a fit on all the data."""
    labels = list(Intent)
    des = design([featurize(t) for t in texts], targets, labels)
    rule_scores, hard = rule_matrix(texts, rules, labels)
    probs, whole = _fits(des, folds, 0, full=True)
    assert whole is not None
    primary = [Intent.STOP if Intent.STOP in t else t[0] for t in targets]

    def policy(
        m: dict[Intent, float], rs: dict[Intent, float], h: set[Intent], t: Tuned
    ) -> list[tuple[Intent, float]]:
        return decide(m, rs, h, t, rules.suppress)

    tuned = tune(probs, des.y, rule_scores, hard, labels, primary, policy)
    tuned.probs = probs
    tuned.examples = len(texts)
    weights, bias = whole
    model = IntentModel(
        labels,
        des.vocab,
        weights,
        bias,
        [tuned.thresholds[lab] for lab in labels],
        tuned.rules_help,
        tuned.floor,
    )
    return model, tuned


def rule_matrix(
    texts: Sequence[Normalized], rules: Rules, labels: Sequence[Intent]
) -> tuple[np.ndarray, np.ndarray]:
    """(strongest rule weight, hard hit) per text and intent."""
    index = {lab: j for j, lab in enumerate(labels)}
    scores = np.zeros((len(texts), len(labels)))
    hard = np.zeros((len(texts), len(labels)), dtype=bool)
    for r, t in enumerate(texts):
        hits, _ = rules.match(t.text, t.compact)
        for h in hits:
            j = index[h.intent]
            scores[r, j] = max(scores[r, j], h.weight)
            hard[r, j] |= h.hard
    return scores, hard


# Bump when training changes in a way neither the files nor the code below can show.
_VERSION = 3
# The code that shapes a trained model: a change to any of it retrains.
_SHAPING = (
    "normalize.py", "classifier.py", "tuning.py", "combine.py", "nlu.py", "rules.py", "data.py",
)  # fmt: skip


def training_key(files: Sequence[Path]) -> str:
    """Identifies a trained model by the bytes of its data files (training examples, rules,
    jieba dictionary), the code that shapes it, and its settings. Hashing bytes rather than
    parsed data keeps a cached start under 1.5 s: nothing is parsed or normalised to look up
    the cache."""
    from intents import classifier

    h = hashlib.sha256()
    h.update(json.dumps([_VERSION, classifier.LAMBDA, classifier.BALANCE, classifier.MIN_COUNT,
                         classifier.TOLERANCE, FOLDS]).encode())  # fmt: skip
    here = Path(__file__).parent
    for path in [*(here / name for name in _SHAPING), *files]:
        h.update(path.name.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:32]


def format_tuned(tuned: Tuned) -> str:
    """The cross-validation report: what was chosen, and the out-of-fold figures behind it."""
    lines = [
        f"{FOLDS}-fold cross-validation on {tuned.examples} training examples",
        f"out-of-fold primary accuracy {tuned.accuracy:.4f}, macro-F1 {tuned.macro_f1:.4f}, "
        f"guess floor {tuned.floor:.2f}",
        "",
        f"{'intent':<16}{'threshold':>10}{'F1 model':>10}{'F1 +rules':>11}{'rules':>7}"
        f"{'precision':>11}{'recall':>8}",
    ]
    for intent, f in tuned.figures.items():
        lines.append(
            f"{intent.value:<16}{f.threshold:>10.3f}{f.f1_model:>10.3f}{f.f1_rules:>11.3f}"
            f"{'yes' if f.rules_used else 'no':>7}{f.precision:>11.3f}{f.recall:>8.3f}"
        )
    lines.append(f"(stop's threshold maximises F{STOP_BETA:g}, printed in its F1 columns)")
    return "\n".join(lines)

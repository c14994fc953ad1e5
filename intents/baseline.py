"""The plain baseline the NLU must beat, and the interval on the difference.

The baseline is the textbook model: scikit-learn's TF-IDF over character 1-3-grams of the raw
text and a one-vs-rest logistic regression with default settings, trained on the same training
files; its primary is the most probable intent, its intents those at 0.5 or more. If the NLU
does not beat it clearly, its rules, normalisation and tuning do not earn their complexity.

The interval is a paired bootstrap over the set's examples (both systems on the same resampled
examples), so it reflects how much the figure would move on another set of the same kind.
scikit-learn is only needed here (``pip install 'smsbot[eval]'``); the service never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from common.errors import UsageError
from intents import tuning
from intents.data import Example
from intents.model import Intent

_RESAMPLES = 2000


@dataclass(frozen=True)
class Outcome:
    """One system's answers on one set: primary and intents per example."""

    primary: list[Intent]
    intents: list[frozenset[Intent]]


def baseline(train: Sequence[Example], texts: Sequence[str]) -> Outcome:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.preprocessing import MultiLabelBinarizer
    except ImportError as exc:  # an optional extra: say how to get it
        raise UsageError(
            "--baseline needs scikit-learn: pip install 'smsbot[eval]' (or scikit-learn)"
        ) from exc
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3))
    x = vec.fit_transform([e.text for e in train])
    binarizer = MultiLabelBinarizer(classes=[i.value for i in Intent])
    y = binarizer.fit_transform([[i.value for i in e.intents] for e in train])
    clf = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(x, y)
    probs = clf.predict_proba(vec.transform(list(texts)))
    labels = [Intent(c) for c in binarizer.classes_]
    primary = [labels[int(np.argmax(p))] for p in probs]
    intents = [
        frozenset({labels[j] for j, v in enumerate(p) if v >= 0.5} | {top})
        for p, top in zip(probs, primary, strict=True)
    ]
    return Outcome(primary, intents)


def accuracy(o: Outcome, gold: Sequence[Example], idx: np.ndarray) -> float:
    return float(np.mean([o.primary[i] == _primary(gold[i]) for i in idx]))


def macro_f1(o: Outcome, gold: Sequence[Example], idx: np.ndarray) -> float:
    return tuning.macro_f1((o.intents[i], set(gold[i].intents)) for i in idx)


def _primary(e: Example) -> Intent:
    return Intent.STOP if Intent.STOP in e.intents else e.primary


Metric = Callable[[Outcome, Sequence[Example], np.ndarray], float]


def difference(
    ours: Outcome, theirs: Outcome, gold: Sequence[Example], metric: Metric, seed: int = 0
) -> tuple[float, float, float]:
    """(ours - theirs, and its 95 % paired-bootstrap interval)."""
    everything = np.arange(len(gold))
    point = metric(ours, gold, everything) - metric(theirs, gold, everything)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(_RESAMPLES):
        idx = rng.integers(0, len(gold), len(gold))
        diffs.append(metric(ours, gold, idx) - metric(theirs, gold, idx))
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return point, float(lo), float(hi)

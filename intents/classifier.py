"""Statistical half of the NLU: one-vs-rest logistic regression over character n-grams.

Character 1-3-grams are robust to the typos and missing word boundaries of short Chinese
messages; jieba words add a little context. Training (L-BFGS, a fraction of a second on our
data) happens at start-up from the labelled files, so operators' new examples take effect on
reload. Prediction avoids numpy per-call overhead on tiny vectors by summing Python floats.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from intents.model import Intent

if TYPE_CHECKING:
    from scipy import sparse

Featurizer = Callable[[str], list[str]]

_LAMBDA = 0.0002  # L2 strength, chosen by cross-validation on the training files
_MIN_COUNT = 1
# 0 = no re-weighting of positives, 1 = fully balanced; between keeps scores usable as
# probabilities while rare intents still get heard.
_BALANCE = 0.5
# Bump when features or training change in a way the data hash cannot see.
_MODEL_VERSION = 1


_BOUNDARY = frozenset({"^", "$", "^$"})


def char_ngrams(text: str, n_max: int = 3) -> list[str]:
    """Character n-grams with boundary markers, so 'td' alone differs from 'td' inside a word."""
    padded = f"^{text}$"
    feats: list[str] = []
    for n in range(1, n_max + 1):
        feats.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return feats


class IntentModel:
    """Independent sigmoid per intent, since one reply can carry several intents."""

    def __init__(
        self, labels: Sequence[Intent], vocab: dict[str, int], weights: np.ndarray, bias: np.ndarray
    ) -> None:
        self.labels = tuple(labels)
        self._bias = [float(b) for b in bias]
        # Row per feature as a tuple of floats: fast to add in pure Python for short texts.
        self._rows = {f: tuple(float(w) for w in weights[i]) for f, i in vocab.items()}

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        targets: Sequence[Iterable[Intent]],
        featurize: Featurizer,
        labels: Sequence[Intent],
    ) -> IntentModel:
        from scipy import sparse  # only training needs scipy; keep it out of cold start

        docs = [featurize(t) for t in texts]
        counts: dict[str, int] = {}
        for d in docs:
            for f in set(d):
                counts[f] = counts.get(f, 0) + 1
        vocab = {
            f: i for i, f in enumerate(sorted(f for f, c in counts.items() if c >= _MIN_COUNT))
        }
        rows, cols, vals = [], [], []
        for r, d in enumerate(docs):
            uniq = {vocab[f] for f in d if f in vocab}
            norm = 1.0 / math.sqrt(len(uniq)) if uniq else 0.0
            for c in uniq:
                rows.append(r)
                cols.append(c)
                vals.append(norm)
        x = sparse.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)))
        y = np.zeros((len(docs), len(labels)))
        index = {lab: j for j, lab in enumerate(labels)}
        for r, tgt in enumerate(targets):
            for lab in tgt:
                y[r, index[lab]] = 1.0
        weights = np.zeros((len(vocab), len(labels)))
        bias = np.zeros(len(labels))
        for j in range(len(labels)):
            weights[:, j], bias[j] = _fit_binary(x, y[:, j])
        return cls(labels, vocab, weights, bias)

    def save(self, path: Path) -> None:
        """Writes the model atomically (a crash never leaves a half-written cache)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        vocab = list(self._rows)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                labels=np.array([lab.value for lab in self.labels]),
                vocab=np.array(vocab),
                weights=np.array([self._rows[f] for f in vocab], dtype=np.float64),
                bias=np.array(self._bias),
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> IntentModel:
        with np.load(path, allow_pickle=False) as z:
            labels = [Intent(str(v)) for v in z["labels"]]
            vocab = {str(f): i for i, f in enumerate(z["vocab"])}
            return cls(labels, vocab, z["weights"], z["bias"])

    def scores(self, features: list[str]) -> dict[Intent, float]:
        uniq = {f for f in features if f in self._rows}
        if not uniq - _BOUNDARY:
            # Nothing but "a short text" is known (😀😀😀): the model has no evidence to give.
            return {}
        acc = list(self._bias)
        if uniq:
            norm = 1.0 / math.sqrt(len(uniq))
            n = len(acc)
            for f in uniq:
                row = self._rows[f]
                for j in range(n):
                    acc[j] += row[j] * norm
        return {lab: _sigmoid(z) for lab, z in zip(self.labels, acc, strict=True)}


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def training_key(texts: Sequence[str], targets: Sequence[Iterable[Intent]]) -> str:
    """Identifies a trained model: the data it saw and every setting that shapes it."""
    h = hashlib.sha256()
    h.update(json.dumps([_MODEL_VERSION, _LAMBDA, _BALANCE, _MIN_COUNT]).encode())
    for t, tgt in zip(texts, targets, strict=True):
        h.update(json.dumps([t, sorted(i.value for i in tgt)], ensure_ascii=False).encode())
    return h.hexdigest()[:32]


def _fit_binary(x: sparse.csr_matrix, y: np.ndarray) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression, weights and bias, by L-BFGS."""
    from scipy import optimize

    n, d = x.shape
    # Rare positives would otherwise be drowned by 12 other intents' examples.
    pos = max(y.sum(), 1.0)
    sample_w = np.where(y > 0, (n / pos) ** _BALANCE / 2, 1.0)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:d], params[d]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        ll = np.logaddexp(0.0, z) - y * z
        value = float((sample_w * ll).sum() / n + 0.5 * _LAMBDA * (w @ w))
        g = sample_w * (p - y) / n
        grad_w = x.T @ g + _LAMBDA * w
        return value, np.concatenate([grad_w, [g.sum()]])

    res = optimize.minimize(
        loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 300}
    )
    return res.x[:d], float(res.x[d])

"""Statistical half of the NLU: multi-label logistic regression over character n-grams and words.

Character 1-3-grams are robust to the typos and missing word boundaries of short Chinese
messages; jieba words add a little context. One reply can carry several intents, so each intent
has its own sigmoid, but all are fitted in one L-BFGS run over the weight matrix (one sparse
product per iteration for all 13 intents, rather than 13 runs: cross-validation in
:mod:`intents.tuning` fits six models per training run). Prediction avoids numpy's per-call
overhead on tiny vectors by summing Python floats.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from intents.model import Intent

if TYPE_CHECKING:
    from scipy import sparse

# L2 strength and positive re-weighting: chosen by 5-fold cross-validation on the training
# files (intents.tuning; `smsbot intents eval --cv` prints the figures). 1e-6 against 3e-6:
# out-of-fold accuracy 0.8732 → 0.8758, macro-F1 0.8873 → 0.8886 (mean of three fold seeds;
# seed 2 alone: 0.8768 → 0.8755, macro-F1 equal); 5e-7 was no better on macro-F1 and varied
# more between seeds (stop recall 0.939-0.952).
LAMBDA = 1e-6
# 0 = no re-weighting of positives, 1 = fully balanced; between keeps scores usable as
# probabilities while rare intents still get heard.
BALANCE = 0.5
_MAX_ITER = 400
# A feature seen in one training text only is that text's fingerprint: it cannot generalise,
# and dropping it shrinks the model 2.5x (cross-validated: `smsbot intents eval --cv`).
MIN_COUNT = 2
# Relative loss change at which L-BFGS stops (cross-validated: tighter changes no figure).
TOLERANCE = 1e-6

_BOUNDARY = frozenset({"^", "$", "^$"})


def char_ngrams(text: str, n_max: int = 3) -> list[str]:
    """Character n-grams with boundary markers, so 'td' alone differs from 'td' inside a word."""
    padded = f"^{text}$"
    feats: list[str] = []
    for n in range(1, n_max + 1):
        feats.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return feats


@dataclass
class Design:
    """Training texts as a sparse matrix (rows L2-normalised binary features) and targets."""

    x: sparse.csr_matrix
    y: np.ndarray  # (n, labels) of 0/1
    vocab: dict[str, int]


def design(
    docs: Sequence[list[str]],
    targets: Sequence[Iterable[Intent]],
    labels: Sequence[Intent],
    *,
    min_count: int = MIN_COUNT,
) -> Design:
    from scipy import sparse  # only training needs scipy; keep it out of cold start

    df: dict[str, int] = {}
    for d in docs:
        for f in set(d):
            df[f] = df.get(f, 0) + 1
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for r, d in enumerate(docs):
        # In the order of the text, not of a set: string hashes change per process, and a
        # different column order gives a slightly different optimum (training must repeat).
        uniq = dict.fromkeys(d)
        # The norm counts every feature, kept or not, as prediction does (it cannot know
        # which of a new text's features were rare in training).
        norm = 1.0 / math.sqrt(len(uniq)) if uniq else 0.0
        kept = [vocab.setdefault(f, len(vocab)) for f in uniq if df[f] >= min_count]
        rows.extend([r] * len(kept))
        cols.extend(kept)
        vals.extend([norm] * len(kept))
    x = sparse.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)))
    y = np.zeros((len(docs), len(labels)))
    index = {lab: j for j, lab in enumerate(labels)}
    for r, tgt in enumerate(targets):
        for lab in tgt:
            if lab in index:
                y[r, index[lab]] = 1.0
    return Design(x, y, vocab)


def fit(
    x: sparse.csr_matrix, y: np.ndarray, *, lam: float = LAMBDA, balance: float = BALANCE
) -> tuple[np.ndarray, np.ndarray]:
    """L2-regularised independent logistic regressions, one per column of ``y``, fitted jointly.

    Returns (weights (d, labels), bias (labels,)).
    """
    n, d = x.shape
    k = y.shape[1]
    # Rare positives would otherwise be drowned by the other intents' examples.
    pos = np.maximum(y.sum(axis=0), 1.0)
    sample_w = np.where(y > 0, (n / pos) ** balance / 2, 1.0)
    xt = x.T.tocsr()

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w = params[: d * k].reshape(d, k)
        b = params[d * k :]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        ll = np.logaddexp(0.0, z) - y * z
        value = float((sample_w * ll).sum() / n + 0.5 * lam * float((w * w).sum()))
        g = sample_w * (p - y) / n
        grad_w = xt @ g + lam * w
        return value, np.concatenate([grad_w.ravel(), g.sum(axis=0)])

    params = lbfgs(loss, np.zeros(d * k + k))
    return params[: d * k].reshape(d, k), params[d * k :]


def lbfgs(
    loss: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    memory: int = 10,
    max_iter: int = _MAX_ITER,
    gtol: float = 1e-6,
) -> np.ndarray:
    """Unconstrained L-BFGS (two-loop recursion, backtracking Armijo line search).

    Hand-written because scipy's L-BFGS-B spends 38 ms of bookkeeping per iteration on our
    330,000 parameters (its bound handling), 40 s per training run against 1.5 s here, for the
    same optimum (measured on the training files, scipy 1.17). Inner products go through
    :func:`_dot`, not BLAS: OpenBLAS threads spin-waiting on a busy 2-core machine made one
    fit take 34 s instead of 5 s.
    """
    x = x0.copy()
    f, g = loss(x)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    for _ in range(max_iter):
        if float(np.abs(g).max()) < gtol:
            break
        q = g.copy()
        alphas = []
        for s_i, y_i in zip(reversed(s_hist), reversed(y_hist), strict=True):
            rho = 1.0 / _dot(y_i, s_i)
            a = rho * _dot(s_i, q)
            q -= a * y_i
            alphas.append((rho, a))
        if s_hist:
            q *= _dot(s_hist[-1], y_hist[-1]) / _dot(y_hist[-1], y_hist[-1])
        for s_i, y_i, (rho, a) in zip(s_hist, y_hist, reversed(alphas), strict=True):
            q += (a - rho * _dot(y_i, q)) * s_i
        direction = -q
        slope = _dot(g, direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            direction, slope = -g, -_dot(g, g)
        step = 1.0 if s_hist else 1.0 / max(float(np.abs(g).max()), 1e-12)
        while True:
            x_new = x + step * direction
            f_new, g_new = loss(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = x_new - x, g_new - g
        if _dot(s_vec, y_vec) > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        converged = abs(f - f_new) <= TOLERANCE * max(abs(f), 1.0)
        x, f, g = x_new, f_new, g_new
        if converged:
            break
    return x


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.einsum("i,i->", a, b))


def predict(x: sparse.csr_matrix, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Probabilities (n, labels) for a design matrix (cross-validation's out-of-fold scores)."""
    z: np.ndarray = np.asarray(x @ weights) + bias
    probs: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return probs


class IntentModel:
    """Independent sigmoid per intent, since one reply can carry several intents, and the
    per-intent thresholds and rule use that cross-validation chose (``intents.tuning``)."""

    def __init__(
        self,
        labels: Sequence[Intent],
        vocab: dict[str, int],
        weights: np.ndarray,
        bias: np.ndarray,
        thresholds: Sequence[float] | None = None,
        rules_help: Iterable[Intent] = (),
        floor: float = 1.0,
    ) -> None:
        self.labels = tuple(labels)
        self._bias = [float(b) for b in bias]
        # Row per feature as a tuple of floats: fast to add in pure Python for short texts.
        self._rows = {f: tuple(float(w) for w in weights[i]) for f, i in vocab.items()}
        self.thresholds: dict[Intent, float] = dict(
            zip(self.labels, thresholds if thresholds is not None else [0.5] * len(labels),
                strict=True)
        )  # fmt: skip
        self.rules_help = frozenset(rules_help)
        self.floor = floor

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
                thresholds=np.array([self.thresholds[lab] for lab in self.labels]),
                rules_help=np.array(sorted(i.value for i in self.rules_help), dtype=str),
                floor=np.array(self.floor),
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> IntentModel:
        with np.load(path, allow_pickle=False) as z:
            labels = [Intent(str(v)) for v in z["labels"]]
            vocab = {str(f): i for i, f in enumerate(z["vocab"])}
            return cls(
                labels,
                vocab,
                z["weights"],
                z["bias"],
                [float(t) for t in z["thresholds"]],
                [Intent(str(v)) for v in z["rules_help"]],
                float(z["floor"]),
            )

    def scores(self, features: list[str]) -> dict[Intent, float]:
        feats = set(features)
        rows = self._rows
        known = [f for f in feats if f in rows]
        if len(known) <= len(_BOUNDARY) and all(f in _BOUNDARY for f in known):
            # Nothing but "a short text" is known (😀😀😀): the model has no evidence to give.
            return {}
        norm = 1.0 / math.sqrt(len(feats))
        # Every kept feature weighs the same (the row's norm), so the rows are summed per
        # intent first (zip and sum run in C: 2.6x faster than adding row by row) and scaled once.
        sums = map(sum, zip(*[rows[f] for f in known], strict=True))
        return {
            lab: _sigmoid(b + s * norm)
            for lab, b, s in zip(self.labels, self._bias, sums, strict=True)
        }


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)

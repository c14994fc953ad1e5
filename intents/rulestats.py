"""What each rule is worth, measured on the training files (``smsbot intents eval --rules``).

For every rule: how often it fires on training texts, its precision there (the share of those
texts labelled with the rule's intent), and what it adds to its intent's F1 beside the model's
out-of-fold probabilities at the cross-validated threshold (the intent's F1 with all its rules,
minus its F1 with this rule left out). A rule that never fires, fires mostly wrong, or lowers
F1 is listed first so an operator can rewrite or remove it. Every rule is also a feature of the
model (its weight learnt in training); for the intents whose rules cross-validation did not keep
beside the model (``rules_help``), that is all they are, and ΔF1 does not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from intents.model import Intent
from intents.normalize import Normalized
from intents.rules import Rules
from intents.tuning import Tuned


@dataclass(frozen=True)
class RuleFigures:
    rule: str
    intent: Intent
    hard: bool
    fires: int
    precision: float
    delta_f1: float  # the intent's F1 with the rule minus without it
    counted: bool  # the intent's rules count (hard, or kept by cross-validation)

    @property
    def verdict(self) -> str:
        if not self.fires:
            return "never fires"
        if self.precision < 0.5:
            return "mostly wrong"
        if self.counted and self.delta_f1 < 0:
            # A hard rule stays whatever its F1: a missed opt-out is a breach, not an error.
            return "hurts F1 (hard: kept for safety)" if self.hard else "hurts"
        return ""


def rule_figures(
    texts: Sequence[Normalized],
    targets: Sequence[Sequence[Intent]],
    rules: Rules,
    tuned: Tuned,
) -> list[RuleFigures]:
    assert tuned.probs is not None, "needs the out-of-fold probabilities of tuning.train"
    labels = list(Intent)
    fired: dict[str, set[int]] = {spec.id: set() for spec in rules.specs}
    weight_of: dict[int, dict[str, float]] = {}
    for r, t in enumerate(texts):
        hits, _ = rules.match(t.text, t.compact)
        weight_of[r] = {h.rule: h.weight for h in hits}
        for h in hits:
            fired[h.rule].add(r)
    out = []
    for spec in rules.specs:
        j = labels.index(spec.intent)
        truth = np.array([spec.intent in t for t in targets])
        rows = fired[spec.id]
        right = sum(truth[r] for r in rows)
        counted = spec.hard or spec.intent in tuned.rules_help
        delta = 0.0
        if rows and counted:
            delta = _f1(tuned, rules, spec.intent, j, truth, weight_of, None) - _f1(
                tuned, rules, spec.intent, j, truth, weight_of, spec.id
            )
        out.append(
            RuleFigures(
                rule=spec.id,
                intent=spec.intent,
                hard=spec.hard,
                fires=len(rows),
                precision=right / len(rows) if rows else 0.0,
                delta_f1=delta,
                counted=counted,
            )
        )
    return out


def _f1(
    tuned: Tuned,
    rules: Rules,
    intent: Intent,
    j: int,
    truth: np.ndarray,
    weight_of: dict[int, dict[str, float]],
    without: str | None,
) -> float:
    assert tuned.probs is not None
    ids = {s.id for s in rules.specs if s.intent is intent and s.id != without}
    hard_ids = {s.id for s in rules.specs if s.intent is intent and s.hard and s.id != without}
    threshold = tuned.thresholds[intent]
    tp = fp = fn = 0
    for r in range(len(truth)):
        hits = weight_of[r]
        w = max((v for k, v in hits.items() if k in ids), default=0.0)
        p = float(tuned.probs[r, j])
        pred = any(k in hard_ids for k in hits) or 1.0 - (1.0 - w) * (1.0 - p) >= threshold
        tp += pred and truth[r]
        fp += pred and not truth[r]
        fn += truth[r] and not pred
    return 2 * tp / max(2 * tp + fp + fn, 1)


def format_rules(figures: Sequence[RuleFigures], examples: int) -> str:
    lines = [
        f"rules measured on {examples} training examples (ΔF1: the intent's out-of-fold F1 "
        "with the rule minus without it; n/a: the intent's rules count only as the model's "
        "features, weighed in training)",
        f"{'rule':<28}{'intent':<16}{'fires':>6}{'precision':>10}{'ΔF1':>8}  verdict",
    ]
    for f in sorted(figures, key=lambda f: (f.verdict == "", f.intent.value, f.rule)):
        delta = f"{f.delta_f1:+.4f}" if f.counted and f.fires else "n/a"
        precision = f"{f.precision:.3f}" if f.fires else "n/a"
        lines.append(
            f"{f.rule:<28}{f.intent.value:<16}{f.fires:>6}{precision:>10}{delta:>8}  "
            f"{f.verdict or ('hard' if f.hard else 'ok')}"
        )
    bad = sum(1 for f in figures if f.verdict)
    lines.append(f"{bad} of {len(figures)} rules never fire, fire mostly wrong or hurt")
    return "\n".join(lines)

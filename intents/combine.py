"""How rule hits and model probabilities become the intents of a reply.

The policy, in order:
1. a hard rule (stop, wrong number) decides its intent alone;
2. any other intent's score is the model's probability, or, for the intents whose rules earned
   it in cross-validation (``rules_help``), the noisy-or of its strongest rule and the model;
   it is present at its own threshold (:mod:`intents.tuning` chose both on training data);
3. ``suppress`` (rules.yaml, the labelling conventions of DATA.md): an intent is dropped when a
   listed intent is present (a refusal with a reason is that reason; acknowledge only alone);
   ``unknown`` present beside others wins only when surer than all of them (each score over
   its threshold), and never against a hard rule;
4. the present intents are ordered as DATA.md orders labels: what the flow must act on first;
5. with nothing present, the intent whose score is nearest its threshold (best ratio) is still
   the primary when the ratio reaches the cross-validated ``floor`` (never stop or wrong
   number: their hard rules are the authority), else ``unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from intents.model import LABEL_ORDER, Intent, IntentScore, RuleHit

PRIORITY: dict[Intent, int] = {i: n for n, i in enumerate(LABEL_ORDER)}
# Never guessed: a stop or wrong number below its threshold has no rule and too little model.
_NEVER_GUESSED = frozenset({Intent.STOP, Intent.WRONG_NUMBER})


class Decisions(Protocol):
    """What cross-validation chose (an :class:`~intents.classifier.IntentModel` carries it)."""

    @property
    def thresholds(self) -> Mapping[Intent, float]: ...
    @property
    def rules_help(self) -> frozenset[Intent]: ...
    @property
    def floor(self) -> float: ...


def decide(
    model: Mapping[Intent, float],
    rule_scores: Mapping[Intent, float],
    hard: set[Intent] | frozenset[Intent],
    chosen: Decisions,
    suppress: Mapping[Intent, frozenset[Intent]],
) -> list[tuple[Intent, float]]:
    """The present intents, first the primary, with their scores (empty: nothing to say)."""
    score: dict[Intent, float] = {}
    present: set[Intent] = set(hard)
    for intent, thr in chosen.thresholds.items():
        if intent in hard:
            score[intent] = 1.0
            continue
        m = model.get(intent, 0.0)
        r = rule_scores.get(intent, 0.0) if intent in chosen.rules_help else 0.0
        s = 1.0 - (1.0 - r) * (1.0 - m)
        score[intent] = s
        if s >= thr:
            present.add(intent)
    dropped = {i for i in present if i not in hard and present & suppress.get(i, frozenset())}
    present -= dropped
    if Intent.UNKNOWN in present:
        # "Nothing above applies" against a weak other intent: the surer of the two wins,
        # each measured against its own threshold (啥 is no question about the debt).
        present.discard(Intent.UNKNOWN)
        if (
            not hard
            and present
            and max(score[i] / chosen.thresholds[i] for i in present)
            < score[Intent.UNKNOWN] / chosen.thresholds[Intent.UNKNOWN]
        ):
            return []
    if present:
        return [(i, score[i]) for i in sorted(present, key=PRIORITY.__getitem__)]
    ratios = {
        i: score[i] / max(chosen.thresholds[i], 1e-6)
        for i in score
        if i not in _NEVER_GUESSED and i not in dropped
    }
    if not ratios:
        return []
    best = max(ratios, key=lambda i: (ratios[i], -PRIORITY[i]))
    # No evidence at all (呃, 😀😀😀: the model saw nothing it knows) is never a guess.
    if best is Intent.UNKNOWN or ratios[best] <= 0.0 or ratios[best] < chosen.floor:
        return []
    return [(best, score[best])]


def combine(
    hits: Sequence[RuleHit],
    model: Mapping[Intent, float],
    chosen: Decisions,
    suppress: Mapping[Intent, frozenset[Intent]],
    *,
    meaningful: bool,
) -> tuple[IntentScore, ...]:
    if not meaningful:
        return (IntentScore(name=Intent.UNKNOWN, score=1.0),)
    rule_score: dict[Intent, float] = {}
    hard: set[Intent] = set()
    for h in hits:
        rule_score[h.intent] = max(rule_score.get(h.intent, 0.0), h.weight)
        if h.hard:
            hard.add(h.intent)
    decided = decide(model, rule_score, hard, chosen, suppress)
    if not decided:
        unknown = max(model.get(Intent.UNKNOWN, 0.0), 1.0 - max(model.values(), default=0.0))
        return (IntentScore(name=Intent.UNKNOWN, score=round(unknown, 4)),)
    return tuple(IntentScore(name=i, score=round(s, 4)) for i, s in decided)

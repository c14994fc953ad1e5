"""How rule hits and model probabilities become the intents of a reply.

The policy, in order:
1. an intent's score is the noisy-or of its strongest rule and the model (hard rules give 1.0);
2. ``suppress``: an intent is dropped when a listed intent is present and at least as sure
   (a refusal with a hardship reason is the hardship);
3. an intent is present at ``threshold``; one with no rule hit needs ``model_alone`` from the
   model, except as the primary; ``needs_evidence`` intents always do;
4. close scores (within ``TIE``) are ordered by what the flow must act on first;
5. with nothing present, the best guess still becomes the primary above ``primary_floor``
   (never a ``needs_evidence`` or ``floor_excludes`` intent), else ``unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from intents.model import Intent, IntentScore, RuleHit
from intents.rules import Rules

TIE = 0.15
# What the flow must act on first: legal and safety intents lead.
PRIORITY: dict[Intent, int] = {
    i: n
    for n, i in enumerate(
        [
            Intent.STOP, Intent.WRONG_NUMBER, Intent.DISPUTE, Intent.HARDSHIP, Intent.ALREADY_PAID,
            Intent.REQUEST_PLAN, Intent.PROMISE_TO_PAY, Intent.REFUSE_TO_PAY, Intent.REQUEST_HUMAN,
            Intent.ASK_INFO, Intent.ABUSE, Intent.ACKNOWLEDGE, Intent.UNKNOWN,
        ]
    )
}  # fmt: skip


def combine(
    hits: Sequence[RuleHit], model: Mapping[Intent, float], policy: Rules, *, meaningful: bool
) -> tuple[IntentScore, ...]:
    if not meaningful:
        return (IntentScore(name=Intent.UNKNOWN, score=1.0),)
    rule_score: dict[Intent, float] = {}
    hard: set[Intent] = set()
    for h in hits:
        rule_score[h.intent] = max(rule_score.get(h.intent, 0.0), h.weight)
        if h.hard:
            hard.add(h.intent)
    score: dict[Intent, float] = {}
    for intent in Intent:
        if intent is not Intent.UNKNOWN:
            r, m = rule_score.get(intent, 0.0), model.get(intent, 0.0)
            score[intent] = 1.0 if intent in hard else 1.0 - (1.0 - r) * (1.0 - m)

    def evidenced(i: Intent, need: float) -> bool:
        return i in rule_score or model.get(i, 0.0) >= need

    suppressed = {
        intent
        for intent, by in policy.suppress.items()
        if intent not in hard
        and any(
            score.get(b, 0.0) >= policy.threshold
            and (b in rule_score or score[b] >= score.get(intent, 0.0))
            for b in by
        )
    }
    ranked = sorted(
        (i for i, s in score.items() if s >= policy.threshold and i not in suppressed),
        key=lambda i: (-score[i], PRIORITY[i]),
    )
    ranked = [
        i
        for n, i in enumerate(ranked)
        if evidenced(i, policy.model_alone if (n > 0 or i in policy.needs_evidence) else 0.0)
    ]
    if ranked:
        top = score[ranked[0]]
        tied = sorted((i for i in ranked if score[i] >= top - TIE), key=PRIORITY.__getitem__)
        ranked = tied + [i for i in ranked if score[i] < top - TIE]
        return tuple(IntentScore(name=i, score=round(score[i], 4)) for i in ranked)
    excluded = policy.needs_evidence | policy.floor_excludes | suppressed
    guesses = {i: s for i, s in score.items() if i not in excluded}
    unknown_p = model.get(Intent.UNKNOWN, 0.0)
    if guesses:
        best = max(guesses, key=lambda i: guesses[i])
        if guesses[best] >= policy.primary_floor and guesses[best] > unknown_p:
            return (IntentScore(name=best, score=round(guesses[best], 4)),)
    unknown = max(unknown_p, 1.0 - max(score.values(), default=0.0))
    return (IntentScore(name=Intent.UNKNOWN, score=round(unknown, 4)),)

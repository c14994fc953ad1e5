"""A rule's ``if:``: the tests a condition may write, held against a conversation."""

from __future__ import annotations

from datetime import date

from dialogs import conversation as c
from dialogs.plans import is_instalment, plan_next
from dialogs.schema import Condition
from dialogs.values import ConversationView

_NO_ENTITIES = c.ReplyEntities()  # what an event that is not a reply says (frozen: shared)


def holds(cond: Condition, conv: ConversationView, event: c.AnyEvent, today: date) -> bool:
    """True if every test written in ``cond`` holds (the first that fails ends the look)."""
    ents = event.entities if isinstance(event, c.Reply) else _NO_ENTITIES
    if cond.entity or cond.no_entity or cond.any_entity:
        present = ents.present()
        if not all(e in present for e in cond.entity):
            return False
        if any(e in present for e in cond.no_entity):
            return False
        if cond.any_entity and not any(e in present for e in cond.any_entity):
            return False
    if cond.intents:
        carried = {s.name for s in event.intents} if isinstance(event, c.Reply) else set()
        if not all(i in carried for i in cond.intents):
            return False
    flags = conv.flags
    if not all(f in flags for f in cond.flags) or any(f in flags for f in cond.not_flags):
        return False
    counters = conv.counters
    if not all(counters.get(k, 0) < n for k, n in cond.counter_below.items()):
        return False
    if not all(counters.get(k, 0) >= n for k, n in cond.counter_at_least.items()):
        return False
    if cond.within_days is not None:
        day = ents.pay_date
        if day is None or not 0 <= (day - today).days <= cond.within_days:
            return False
    if cond.amount_covers_due is not None:
        covers = ents.amount is not None and ents.amount >= conv.outstanding
        if covers != cond.amount_covers_due:
            return False
    if cond.paid_in_full is not None and (conv.outstanding == 0) != cond.paid_in_full:
        return False
    if cond.plan_remaining is not None and (plan_next(conv) is not None) != cond.plan_remaining:
        return False
    if cond.instalment is not None and is_instalment(conv) != cond.instalment:
        return False
    if cond.promise_has_amount is not None:
        has = conv.promise is not None and conv.promise.amount is not None
        if has != cond.promise_has_amount:
            return False
    return cond.promise_kept is None or promise_kept(conv) == cond.promise_kept


def promise_kept(conv: ConversationView) -> bool:
    p = conv.promise
    if p is None:
        return False
    owed_then = conv.account.amount_due - p.paid_before
    target = min(p.amount, owed_then) if p.amount is not None else owed_then
    return conv.paid_total - p.paid_before >= target

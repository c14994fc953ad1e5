"""Instalment plans: which instalment comes next, and the promise it becomes.

A plan (``Conversation.plan``) is recorded by a person; the flow tracks one instalment at a
time as the promise (``plan_remaining``, ``next_instalment``; see dialogs/README.md).
"""

from __future__ import annotations

from datetime import datetime

from dialogs import conversation as c
from dialogs.values import ConversationView


def plan_next(conv: ConversationView) -> c.Instalment | None:
    """The plan's first instalment due after the current promise's day (any, without a dated
    promise): keeping the promise settles the instalments due up to its day."""
    p = conv.promise
    after = p.date if p is not None else None
    return next((i for i in conv.plan if after is None or i.due > after), None)


def is_instalment(conv: ConversationView) -> bool:
    """The promise is one of the plan's instalments: on its day, with an amount (perhaps less
    than planned, when less is owed)."""
    p = conv.promise
    return p is not None and p.amount is not None and any(i.due == p.date for i in conv.plan)


def next_instalment(
    conv: ConversationView, now: datetime
) -> tuple[tuple[c.Instalment, ...], c.Promise] | None:
    """The plan without the settled instalments, and the next one as the promise (None: no
    further instalment). It counts payments from now: paying more than an instalment lowers
    what is owed, not the next instalment; and it never asks for more than is owed."""
    nxt = plan_next(conv)
    if nxt is None:
        return None
    amount = min(nxt.amount, conv.outstanding)
    promise = c.Promise(date=nxt.due, amount=amount, made_at=now, paid_before=conv.paid_total)
    return tuple(i for i in conv.plan if i.due >= nxt.due), promise

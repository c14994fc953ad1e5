"""What a console action does to a conversation, applied by the interpreter under the
account's lock (``bot.interpret``), in the commit of the action's event.

Edits a person makes directly — a promise or an instalment plan recorded while the case stays
with them, a dispute
or hardship hold set or cleared — change the conversation without a flow step (they are a
person's decisions, not the borrower's words); giving the conversation back or closing it goes
through the flow's agent rules (``agent:returned``, ``agent:promised``, ``agent:closed``).
Every action is audited with the agent's name.
"""

from __future__ import annotations

from datetime import datetime

from bot.records import AuditEntry, DeskAction, audit_entry
from dialogs import conversation as c
from dialogs.schema import AgentAction, Flag

_HOLDS = {"disputed": Flag.DISPUTED, "hardship": Flag.HARDSHIP}


def apply_desk(
    conv: c.Conversation, desk: DeskAction, at: datetime, audit: list[AuditEntry]
) -> c.Conversation:
    """The conversation after the direct part of ``desk``; its audit entry appended."""
    if desk.do == "message":
        # Changes nothing on the conversation; the interpreter writes the message and its
        # ``send`` entry (with the agent's name), once per message id (bot.interpret).
        return conv
    detail: dict[str, object] = {"by": desk.agent, "do": desk.do, "case_id": desk.case_id}
    if desk.do == "promise":
        if desk.promise_date is None:
            raise ValueError("a promise needs its date")
        promise = c.Promise(
            date=desk.promise_date,
            amount=desk.promise_amount,
            made_at=at,
            paid_before=conv.paid_total,
        )
        conv = conv.model_copy(update={"promise": promise})
        detail |= {"date": desk.promise_date.isoformat(), "amount": _money(desk.promise_amount)}
    elif desk.do == "hold":
        assert desk.hold is not None
        flag = _HOLDS[desk.hold]
        flags = set(conv.flags) | {flag} if desk.hold_on else set(conv.flags) - {flag}
        # The paused flag goes with a hold: no collection content while either stands.
        if desk.hold_on:
            flags.add(Flag.PAUSED)
        conv = conv.model_copy(update={"flags": tuple(f for f in Flag if f in flags)})
        detail |= {"hold": desk.hold, "on": desk.hold_on}
    elif desk.do == "plan":
        # Replaces any earlier plan (an empty one clears it). The flow tracks it once the
        # conversation is given back at `promised`: each instalment in turn is the promise.
        plan = tuple(c.Instalment(due=i.due, amount=i.amount) for i in desk.plan or ())
        conv = conv.model_copy(update={"plan": plan})
        detail["plan"] = [{"due": i.due.isoformat(), "amount": str(i.amount)} for i in plan]
    elif desk.do == "resolve":
        detail |= {"resolution": desk.resolution, "to_state": desk.to_state}
    if desk.note:
        detail["note"] = desk.note
    audit.append(audit_entry(at, "agent", **detail))
    return conv


def agent_event(action: str | None, desk: DeskAction | None) -> c.Agent | None:
    """The flow's agent event for a queued agent event; None when only the direct part
    applies (a hold, a promise kept with the person, a case resolved and kept paused)."""
    if action is None:
        return None
    if desk is not None and action == AgentAction.PROMISED:
        return c.Agent(
            action=AgentAction.PROMISED,
            promise_date=desk.promise_date,
            promise_amount=desk.promise_amount,
        )
    return c.Agent(action=AgentAction(action))


def _money(value: object) -> str | None:
    return str(value) if value is not None else None

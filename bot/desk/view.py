"""One conversation as an agent sees it at the console: the account, what the gate allows,
the case, the promises, and a transcript that reads as a conversation — the borrower's words
with what the bot understood of them, every message with where it is in the send path, and
the events between (handoffs, steps, a person's actions, payments, an opt-out).

Built from the same reads as the JSON API (``bot.desk.snapshot``). Personal data is masked
(phone, name, ID and card numbers in texts: ``bot.privacy``) unless the agent asked to see
it, and such a reveal is audited by ``Desk.view``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from bot.compliance.gate import Gate, text_hash
from bot.desk.case import Case
from bot.desk.errors import CaseNotFound
from bot.desk.snapshot import Snapshot, read_snapshot
from bot.desk.transcript import promise_history, transcript
from bot.privacy import mask_name, mask_phone
from bot.records import Outbound
from bot.storage.base import Store
from dialogs import conversation as c
from dialogs.engine import rerender
from dialogs.registry import Registry
from dialogs.schema import AgentAction
from dialogs.templates import RenderError

__all__ = [
    "CaseView",
    "MessageVerdict",
    "PromiseItem",
    "TranscriptItem",
    "build_view",
    "give_back_states",
]

_RETURNING = (AgentAction.RETURNED, AgentAction.PROMISED)


class TranscriptItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    direction: Literal["in", "out", "event"]
    text: str | None = None  # masked unless revealed
    by: str | None = None  # "out": the agent (None: the bot); "event": who acted
    # "in": what the bot understood
    intent: str | None = None
    score: float | None = None
    intents: list[dict[str, Any]] = []
    entities: dict[str, Any] = {}
    # "out": the message and where it is in the send path (the record's state)
    message_id: str | None = None
    template: str | None = None
    state: str | None = None
    not_before: AwareDatetime | None = None
    rules: list[str] = []  # the gate's rule ids for a blocked or deferred message
    reasons: list[str] = []
    # "event"
    kind: str | None = None
    summary: str | None = None  # one readable line, Chinese with English


class PromiseItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    date: dt.date | None = None
    amount: Decimal | None = None
    source: Literal["borrower", "agent"]
    by: str | None = None
    outcome: str | None = None  # kept | broken | pending | replaced (None: not known)


class CaseView(BaseModel):
    model_config = ConfigDict(frozen=True)

    account_id: str
    name: str  # masked unless revealed
    phone: str  # masked unless revealed
    revealed: bool
    amount_due: Decimal
    due_date: dt.date | None
    outstanding: Decimal
    paid_total: Decimal
    flow: str
    state: str | None
    flags: list[str]
    holds: list[str]  # disputed, hardship, agent … (the gate's holds)
    opted_out: bool
    promise: PromiseItem | None  # the one the conversation holds now
    promises: list[PromiseItem]  # oldest first
    next_allowed_send: AwareDatetime | None  # None: no proactive message may go at all
    caps: dict[str, int]
    deferred: list[dict[str, Any]]
    case: Case | None
    closed: list[Case]
    give_back: dict[str, str]  # Desk.give_back_states
    transcript: list[TranscriptItem]  # oldest first


class MessageVerdict(BaseModel):
    """What the gate says of an agent's message at the console (``Desk.send_message``)."""

    model_config = ConfigDict(frozen=True)

    verdict: Literal["send", "defer", "block"]
    until: AwareDatetime | None = None
    rules: list[str] = []
    reasons: list[str] = []
    message_id: str | None = None  # None: blocked, nothing queued
    text: str


async def build_view(
    store: Store,
    gate: Gate,
    registry: Registry,
    now: dt.datetime,
    account_id: str,
    *,
    reveal: bool,
) -> CaseView:
    """Raises CaseNotFound for an unknown account. Reads only: a reveal is audited by the
    caller, who knows who is looking (``Desk.view``)."""
    snap = await read_snapshot(store, gate, registry, account_id, now)
    if snap is None:
        raise CaseNotFound(f"no account {account_id!r}")
    account, conv = snap.account, snap.conv
    pack = gate.pack(account.pack)
    zone = gate.zones(account.phone, account.tz, pack)[0]
    promises = [PromiseItem(**p) for p in promise_history(snap.audit, account, zone, now)]
    current = None
    if conv is not None and conv.promise is not None:
        # The conversation's promise is the newest one recorded (by the borrower or a person).
        current = next(
            (p for p in reversed(promises) if p.date == conv.promise.date),
            PromiseItem(
                at=conv.promise.made_at,
                date=conv.promise.date,
                amount=conv.promise.amount,
                source="borrower",
            ),
        )
    compliance = snap.compliance
    holds = list(compliance["holds"])
    return CaseView(
        account_id=account.id,
        name=account.name if reveal else mask_name(account.name),
        phone=account.phone if reveal else mask_phone(account.phone),
        revealed=reveal,
        amount_due=account.amount_due,
        due_date=account.due_date,
        outstanding=conv.outstanding if conv else account.amount_due,
        paid_total=conv.paid_total if conv else Decimal(0),
        flow=conv.flow if conv else account.flow,
        state=conv.state if conv else None,
        flags=[f.value for f in conv.flags] if conv else [],
        holds=holds,
        opted_out=snap.opted_out,
        promise=current,
        promises=promises,
        # A hold, an opt-out or a wrong number stops proactive messages whatever the hour.
        next_allowed_send=next_proactive(gate, registry, snap, now),
        caps=dict(compliance["caps"]),
        deferred=list(compliance["deferred"]),
        case=await store.desk.case(account_id),
        closed=await store.desk.closed_cases(account_id),
        give_back=give_back_states(registry, conv) if conv else {},
        transcript=[
            TranscriptItem(**item) for item in transcript(snap.audit, snap.records, reveal=reveal)
        ],
    )


def next_proactive(
    gate: Gate, registry: Registry, snap: Snapshot, now: dt.datetime
) -> dt.datetime | None:
    """When the gate would let a proactive message of the flow go (None: not at all, e.g. a
    hold or an opt-out), asked of the gate itself so that caps count as well as the window.
    It judges a text, so it is asked about one of the flow's own reminders that was not sent
    lately (the same text again is held for its own reason: a gap between identical texts)."""
    if snap.conv is None:
        return _next_send(snap)
    cf = registry.get(snap.conv.flow)
    recent = {r.text_hash for r in snap.context.history}
    for name, spec in cf.flow.templates.items():
        if not spec.debt_content:
            continue
        try:
            text, _, _ = rerender(cf, snap.conv, name, now)
        except RenderError:
            continue
        if text_hash(text) in recent:
            continue
        probe = Outbound(
            account_id=snap.account.id,
            phone=snap.account.phone,
            text=text,
            template=name,
            created_at=now,
            kind="proactive",
            approved=spec.approved,
        )
        decision = gate.decide(probe, snap.context, now)
        if decision.verdict == "block":
            return None
        return decision.until if decision.verdict == "defer" else now
    return _next_send(snap)


def _next_send(snap: Snapshot) -> dt.datetime | None:
    value = snap.compliance["next_allowed_send"]  # None: nothing proactive may go
    return dt.datetime.fromisoformat(value) if value else None


def give_back_states(registry: Registry, conv: c.Conversation) -> dict[str, str]:
    """The states the flow lets a person give the conversation back to, from where it is
    now, and the agent action that does it."""
    spec = registry.get(conv.flow).flow.spec
    state = spec.states.get(conv.state)
    rules = [*(state.rules if state else []), *spec.global_rules]
    out: dict[str, str] = {}
    for rule in rules:
        kind, _, action = rule.when.partition(":")
        if kind == "agent" and action in _RETURNING and rule.to and rule.to not in out:
            out[rule.to] = action
    return out

"""The account's audit as a conversation for a person (``bot.desk.view``): the borrower's
words with what the bot understood, each message once with where it is in the send path (its
record's state, the gate's rules when it was held or refused), and a readable line for each
event between. Also the history of promises, with what became of each.

Plain dicts out (``bot.desk.view`` validates them into its models): the audit's details are
free-form, and a missing detail must show as nothing, not fail the page.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from bot.outbound.record import OutboundRecord
from bot.privacy import mask_text
from bot.records import AccountRecord, AuditEntry

# Entries that belong to a message (folded into its "out" item) or that only the machinery
# needs (timers, a reveal of the number): not shown as events.
_FOLDED = frozenset(
    {
        "understood",
        "gate",
        "sending",
        "sent",
        "failed",
        "retry",
        "ambiguous",
        "delivered",
        "undelivered",
        "unknown",
        "superseded",
        "schedule",
        "cancel",
        "timer_moved",
        "reveal",
    }
)
_HELD = frozenset({"blocked", "deferred"})


def transcript(
    audit: Sequence[AuditEntry], records: Sequence[OutboundRecord], *, reveal: bool
) -> list[dict[str, Any]]:
    """Oldest first. An agent's refused message is audited when it is refused, a queued
    one when its event is applied (with the time it was queued): sorted by time, stably,
    so entries of one event keep the order they were written in."""
    show = (lambda t: t) if reveal else mask_text
    by_id = {r.id: r for r in records}
    verdicts: dict[str, dict[str, Any]] = {}  # message id -> its latest gate entry
    for e in audit:
        if e.kind == "gate" and "message_id" in e.detail:
            verdicts[e.detail["message_id"]] = e.detail
    items: list[dict[str, Any]] = []
    for e in audit:
        d = e.detail
        if e.kind == "inbound":
            items.append({"at": e.at, "direction": "in", "text": show(str(d.get("text", "")))})
        elif e.kind == "understood" and items and items[-1]["direction"] == "in":
            items[-1].update(_understood(d))
        elif e.kind == "send":
            items.append(_out(e, by_id.get(d.get("message_id", "")), verdicts, show))
        elif e.kind == "agent_message":  # refused at the console: never queued
            items.append(
                {
                    "at": e.at,
                    "direction": "out",
                    "text": show(str(d.get("text", ""))),
                    "by": d.get("by"),
                    "template": d.get("template"),
                    "state": "blocked",
                    "rules": list(d.get("rules", [])),
                    "reasons": list(d.get("reasons", [])),
                }
            )
        elif e.kind == "blocked" and "message_id" in d:
            continue  # the gate step's close of a message: its "out" item shows it
        elif e.kind not in _FOLDED:
            by = d.get("by") if e.kind == "agent" else None
            items.append(
                {
                    "at": e.at,
                    "direction": "event",
                    "kind": e.kind,
                    "by": by,
                    "summary": show(summary(e.kind, d)),
                }
            )
    return sorted(items, key=lambda i: i["at"])


def _understood(d: dict[str, Any]) -> dict[str, Any]:
    intent = d.get("intent")
    intents = [dict(i) for i in d.get("intents", []) if isinstance(i, dict)]
    scores = [float(i["score"]) for i in intents if i.get("name") == intent and "score" in i]
    return {
        "intent": intent,
        "score": scores[0] if scores else None,
        "intents": intents,
        "entities": dict(d.get("entities") or {}),
    }


def _out(
    e: AuditEntry,
    record: OutboundRecord | None,
    verdicts: dict[str, dict[str, Any]],
    show: Any,
) -> dict[str, Any]:
    d = e.detail
    item: dict[str, Any] = {
        "at": e.at,
        "direction": "out",
        # The record's text is what left (a message held to another day is written again).
        "text": show(record.message.text if record else str(d.get("text", ""))),
        "by": d.get("by"),
        "message_id": d.get("message_id"),
        "template": d.get("template"),
    }
    if record is not None:
        item["state"] = record.state
        item["not_before"] = record.message.not_before
        gate = verdicts.get(record.id)
        if record.state in _HELD and gate is not None:
            item["rules"] = list(gate.get("rules", []))
            item["reasons"] = list(gate.get("reasons", []))
    return item


_AGENT_DO = {
    "note": "备注 Note",
    "promise": "记录承诺 Promise recorded",
    "plan": "分期方案 Instalment plan",
    "hold": "暂停 Hold",
    "resolve": "结案 Resolved",
    "link_unmatched": "关联短信 Linked a message",
}


def summary(kind: str, d: dict[str, Any]) -> str:
    """One line for an event, Chinese with English (unmasked: the caller masks)."""
    match kind:
        case "handoff":
            return f"转人工 Handoff: {d.get('reason')} ({d.get('priority', 'normal')})"
        case "step":
            event = str(d.get("event", ""))
            # The borrower's words are in their own "in" item: not repeated here.
            label = "borrower replied" if event.startswith("borrower") else event
            return f"流程 Step: {d.get('before')} → {d.get('after')} ({label})"
        case "payment":
            return f"还款 Payment: {d.get('amount')} ({d.get('reference', '')})"
        case "record_promise":
            return f"承诺还款 Promise: {d.get('date') or '未定 no date'} {d.get('amount') or ''}"
        case "flag" if d.get("flag") == "opted_out" and d.get("value"):
            return "退订 Opt-out"
        case "flag":
            return f"标记 Flag: {d.get('flag')} {'on' if d.get('value') else 'off'}"
        case "agent":
            return _agent_line(d)
        case "preference":
            return f"偏好 Preference: {', '.join(d.get('periods', []))}"
        case "resubscribe":
            return f"重新订阅 Re-subscription: {d.get('verdict')}"
        case "close":
            return f"结束 Closed: {d.get('reason')}"
        case "blocked":
            return f"未发送 Not sent: {d.get('template')} ({d.get('reason')})"
        case "case_expired":
            return f"超时 Case SLA expired: {d.get('reason')}"
        case "notify_agent":
            return f"通知 Notify: {d.get('message')}"
    return kind


def _agent_line(d: dict[str, Any]) -> str:
    do = str(d.get("do", ""))
    line = _AGENT_DO.get(do, do)
    if do == "promise":
        line += f": {d.get('date')} {d.get('amount') or ''}".rstrip()
    elif do == "hold":
        line += f": {d.get('hold')} {'on' if d.get('on') else 'off'}"
    elif do == "plan":
        parts = [f"{i.get('due')} ¥{i.get('amount')}" for i in d.get("plan", [])]
        line += f": {len(parts)} 期 instalments ({', '.join(parts)})"
    elif do == "resolve":
        line += f": {d.get('resolution')}" + (f" → {d['to_state']}" if d.get("to_state") else "")
    if d.get("note"):
        line += f" — {d['note']}"
    return line


def promise_history(
    audit: Sequence[AuditEntry], account: AccountRecord, zone: ZoneInfo, now: dt.datetime
) -> list[dict[str, Any]]:
    """Every promise on record, oldest first: the borrower's (the flow's ``record_promise``
    on a reply) and a person's (recorded at the console, or given with the conversation
    back). Kept, as the flow counts it (``dialogs.conditions.promise_kept``: the payments
    since reach the promised amount, or what was owed then), by the end of the day after the
    promised day, when the flow checks it; broken when that passed without."""
    out: list[dict[str, Any]] = []
    paid: list[tuple[dt.datetime, Decimal]] = []
    agent: tuple[dt.datetime, str | None] | None = None  # the last person's action
    for e in audit:
        d = e.detail
        if e.kind == "payment":
            paid.append((e.at, _money(d.get("amount")) or Decimal(0)))
        elif e.kind == "agent":
            agent = (e.at, d.get("by"))
            if d.get("do") == "promise":
                out.append(_promise(e.at, d, "agent", agent[1], paid))
        elif e.kind == "record_promise":
            # Written by the step of a person's event (agent:promised) or of a reply.
            by_agent = agent is not None and agent[0] == e.at
            by = agent[1] if agent is not None and by_agent else None
            out.append(_promise(e.at, d, "agent" if by_agent else "borrower", by, paid))
        elif e.kind == "inbound":
            agent = None
    for n, p in enumerate(out):
        outcome = _outcome(p, account, paid, zone, now)
        # A later promise made before this one came due replaces it (the conversation holds
        # one): "replaced", not forever "pending".
        later = out[n + 1] if n + 1 < len(out) else None
        if outcome == "pending" and later is not None:
            outcome = "replaced"
        p["outcome"] = outcome
        del p["paid_before"]
    return out


def _promise(
    at: dt.datetime,
    d: dict[str, Any],
    source: str,
    by: str | None,
    paid: list[tuple[dt.datetime, Decimal]],
) -> dict[str, Any]:
    day = d.get("date")
    return {
        "at": at,
        "date": dt.date.fromisoformat(day) if isinstance(day, str) else day,
        "amount": _money(d.get("amount")),
        "source": source,
        "by": by,
        "paid_before": sum((a for _, a in paid), Decimal(0)),
    }


def _outcome(
    p: dict[str, Any],
    account: AccountRecord,
    paid: list[tuple[dt.datetime, Decimal]],
    zone: ZoneInfo,
    now: dt.datetime,
) -> str:
    owed = account.amount_due - p["paid_before"]
    target = min(p["amount"], owed) if p["amount"] is not None else owed
    day: dt.date | None = p["date"]
    deadline = None
    if day is not None:
        # A date recorded before dates were bounded (9999-12-31) must not break the page.
        with contextlib.suppress(OverflowError):
            deadline = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(0), zone)
    total = Decimal(0)
    for at, amount in paid:
        if at < p["at"] or (deadline is not None and at >= deadline):
            continue
        total += amount
        if total >= target:
            return "kept"
    return "broken" if deadline is not None and now >= deadline else "pending"


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None

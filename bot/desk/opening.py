"""What one processed event does to the account's case: the pipeline asks this after the
interpreter and hands the answer to the commit (``Store.commit(…, case=…)``), so a handoff's
case exists exactly when its step is committed, and a resolving event closes its case in the
commit of its own effects."""

from __future__ import annotations

from collections.abc import Sequence

from bot.desk.case import PRIORITY_RANK, Case, CaseChange, Opening, Resolving
from bot.desk.config import DeskConfig
from bot.records import AuditEntry, QueuedEvent
from bot.storage.base import Store
from bot.storage.desk_events import DeskEvent
from dialogs import conversation as c
from dialogs.registry import Registry
from dialogs.schema import Owner


def case_change(
    account_id: str,
    event: QueuedEvent,
    audit: Sequence[AuditEntry],
    config: DeskConfig,
    open_case: str | None = None,
) -> CaseChange | None:
    """``open_case``: the account's open case id, read only for an agent event of the plain
    API (``POST /api/conversations/{id}/agent``), which closes whatever case is open."""
    resolve = None
    desk = event.desk
    if desk is None and event.kind == "agent" and open_case is not None:
        resolve = Resolving(
            case_id=open_case, by="api", at=event.at, resolution=f"api:{event.action}"
        )
    if desk is not None and desk.do == "resolve" and desk.case_id:
        how: str = desk.resolution or "closed"
        if how == "returned":
            how = f"returned:{desk.to_state}"
        resolve = Resolving(case_id=desk.case_id, by=desk.agent, at=event.at, resolution=how)
    handoffs = [e for e in audit if e.kind == "handoff"]
    opening = None
    if handoffs:
        # Several in one event (a tick firing two timers): the most urgent one speaks.
        top = max(handoffs, key=lambda e: PRIORITY_RANK.get(str(e.detail.get("priority")), 1))
        reason = str(top.detail.get("reason") or "unknown")
        priority = str(top.detail.get("priority") or "normal")
        if priority not in PRIORITY_RANK:
            priority = "normal"
        case = Case.model_validate(
            {
                "account_id": account_id,
                "reason": reason,
                "priority": priority,
                "opened_at": event.at,
                "sla_due": config.due(reason, event.at),
            }
        )
        opening = Opening(case)
    change = CaseChange(resolve=resolve, open=opening)
    return change if change else None


async def event_case(
    store: Store,
    account_id: str,
    event: QueuedEvent,
    audit: Sequence[AuditEntry],
    config: DeskConfig,
) -> CaseChange | None:
    """:func:`case_change`, reading the open case's id only for a plain-API agent event."""
    open_case = None
    if event.kind == "agent" and event.desk is None:  # rare: no read on the hot path
        found = await store.desk.case(account_id)
        open_case = found.id if found is not None else None
    return case_change(account_id, event, audit, config, open_case)


def feed_events(
    registry: Registry,
    account_id: str,
    event: QueuedEvent,
    conv: c.Conversation,
    case: CaseChange | None,
) -> list[DeskEvent]:
    """The live feed's events for a committed event: its case change, and a reply on a
    conversation a person owns (the console shows it at once)."""
    events = change_events(account_id, case) if case else []
    if event.kind == "inbound" and not (case and case.open):
        state = registry.get(conv.flow).flow.spec.states.get(conv.state)
        if state is not None and state.owner == Owner.AGENT:
            events.append(DeskEvent(kind="inbound", account_id=account_id, at=event.at))
    return events


def change_events(account_id: str, change: CaseChange) -> list[DeskEvent]:
    """The live feed's events for a committed change."""
    out: list[DeskEvent] = []
    if (r := change.resolve) is not None:
        out.append(
            DeskEvent(
                kind="case_resolved",
                account_id=account_id,
                at=r.at,
                case_id=r.case_id,
                by=r.by,
                detail={"resolution": r.resolution},
            )
        )
    if change.open is not None:
        case = change.open.case
        out.append(
            DeskEvent(
                kind="case_opened",  # opened, or the open case raised (the console re-reads)
                account_id=account_id,
                at=case.opened_at,
                detail={"reason": case.reason, "priority": case.priority},
            )
        )
    return out

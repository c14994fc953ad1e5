"""The desk's store seam: cases and unmatched messages as the agent console needs them.

Kept apart from :class:`bot.storage.base.Store` (and from ``redis.py``) on purpose: the desk
is a narrow set of operations the console calls, while a case is *opened* and *resolved* only
inside the per-account commit (``Store.commit(…, case=CaseChange)``), atomically with the
event whose step handed off or whose agent resolved it. Everything here runs outside the
account's lock and so touches only what no commit rewrites wholesale: the open case's holder,
notes and expiry, each one atomic step (a Lua script on Redis) on the account's own keys.

Every implementation passes the same contract suite (tests/service/test_desk_contract.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from bot.desk.case import PRIORITY_RANK, Case, CaseChange, CaseEntry
from bot.desk.errors import CaseConflict, CaseHeld, CaseNotFound, UnmatchedGone
from bot.records import AuditEntry, QueuedEvent, audit_entry
from bot.storage.desk_events import DeskEvents, MemoryDeskEvents
from bot.transport.inbound import InboundSms

if TYPE_CHECKING:
    from bot.storage.memory import MemoryStore

Outcome = Literal["linked", "dismissed"]
# Who may be the holder after an assignment step: "holder" — only the current holder acts
# (release); "any" — whoever holds it (a supervisor's reassign or release).
Required = Literal["holder", "any"]


def expiry_audit(case: Case, now: datetime, notify: bool) -> AuditEntry:
    """The audit entry of a case's SLA running out unclaimed (the supervisors' notification)."""
    return audit_entry(
        now,
        "case_expired",
        case_id=case.id,
        reason=case.reason,
        priority=case.priority,
        sla_due=case.sla_due.isoformat(),
        notify="supervisors" if notify else None,
    )


def handled_record(
    sms: InboundSms, outcome: Outcome, by: str, at: datetime, account: str | None
) -> dict[str, object]:
    return {
        "sms": sms.model_dump(mode="json"),
        "outcome": outcome,
        "by": by,
        "at": at.isoformat(),
        "account_id": account,
    }


def is_due(case: Case, now: datetime) -> bool:
    """Waiting unclaimed past its SLA and not marked expired yet (:meth:`DeskStore.due_cases`)."""
    return case.state == "waiting" and case.expired_at is None and case.sla_due <= now


def assignment_entry(by: str, holder: str | None, at: datetime) -> CaseEntry:
    """The history entry of a release (``holder`` None) or a reassignment: one for both stores
    (Redis's script writes it without reading the case first)."""
    if holder is None:
        return CaseEntry(at=at, kind="released", by=by)
    return CaseEntry(at=at, kind="reassigned", by=by, detail={"to": holder})


class DeskStore(ABC):
    events: DeskEvents

    # --- reading ---
    @abstractmethod
    async def open_cases(self) -> list[Case]:
        """Every open case, in no particular order (bot.desk.case.queue_order sorts)."""

    @abstractmethod
    async def due_cases(self, now: datetime) -> list[Case]:
        """The open cases that wait unclaimed past their SLA at ``now`` and are not marked
        expired yet: what the SLA step (bot.desk.sla) acts on. Reads only what is due — every
        process runs the step every few seconds, on the inbound path's event loop."""

    @abstractmethod
    async def case(self, account_id: str) -> Case | None:
        """The account's open case."""

    @abstractmethod
    async def closed_cases(self, account_id: str, limit: int = 20) -> list[Case]:
        """The account's resolved cases, newest last."""

    # --- assignment: each one atomic step on the account's case --------------------------
    @abstractmethod
    async def claim(self, account_id: str, case_id: str, agent: str, at: datetime) -> Case:
        """Takes the case for ``agent``: of two agents at once exactly one wins; the other
        gets :class:`CaseHeld` naming the winner. Claiming one's own case again is a no-op."""

    @abstractmethod
    async def assign(
        self,
        account_id: str,
        case_id: str,
        *,
        by: str,
        holder: str | None,
        required: Required,
        at: datetime,
    ) -> Case:
        """Release (``holder`` None: back to waiting) or reassign (to ``holder``). With
        ``required="holder"`` only the current holder ``by`` may (else :class:`CaseHeld`, or
        :class:`CaseConflict` when nobody holds it)."""

    @abstractmethod
    async def add_note(
        self, account_id: str, case_id: str, by: str, text: str, at: datetime
    ) -> Case: ...

    # --- SLA ---
    @abstractmethod
    async def expire(self, case: Case, now: datetime, notify: bool) -> bool:
        """Marks ``case`` expired if it is still open, unclaimed, unmarked and past its SLA
        at ``now``, with its audit entry; False if any of that no longer holds."""

    @abstractmethod
    async def repair_index(self) -> int:
        """Re-indexes every open case and drops index entries with none (Redis: a SCAN);
        how many entries it changed."""

    # --- messages from unknown numbers ---
    @abstractmethod
    async def find_unmatched(self, provider: str, msg_id: str) -> InboundSms | None: ...

    @abstractmethod
    async def take_unmatched(
        self, sms: InboundSms, outcome: Outcome, by: str, at: datetime, account: str | None
    ) -> None:
        """Takes the message off the unmatched list into the handled list (kept for audit),
        once: :class:`UnmatchedGone` if it is no longer on the list."""

    @abstractmethod
    async def handled_unmatched(self, limit: int = 100) -> list[dict[str, object]]: ...


class MemoryDesk(DeskStore):
    """The memory store's desk: no await inside a step, so each is atomic on the loop."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._open: dict[str, Case] = {}
        self._closed: dict[str, list[Case]] = {}
        self._handled: list[dict[str, object]] = []
        self.events = MemoryDeskEvents()

    # Called by MemoryStore.commit, in the same synchronous step as the event's pop.
    def apply(self, account_id: str, change: CaseChange) -> None:
        if change.resolve is not None:
            r = change.resolve
            case = self._open.get(account_id)
            if case is not None and case.id == r.case_id:
                entry = CaseEntry(at=r.at, kind="resolved", by=r.by, detail={"how": r.resolution})
                done = case.model_copy(
                    update={
                        "state": "resolved",
                        "resolved_at": r.at,
                        "resolved_by": r.by,
                        "resolution": r.resolution,
                        "version": case.version + 1,
                        "history": [*case.history, entry],
                    }
                )
                self._closed.setdefault(account_id, []).append(done)
                del self._open[account_id]
        if change.open is not None:
            new = change.open.case
            case = self._open.get(account_id)
            if case is None:
                opened = CaseEntry(
                    at=new.opened_at,
                    kind="opened",
                    detail={"reason": new.reason, "priority": new.priority},
                )
                self._open[account_id] = new.model_copy(update={"history": [opened]})
                return
            update: dict[str, object] = {"version": case.version + 1}
            if PRIORITY_RANK[new.priority] > case.rank:
                update |= {"reason": new.reason, "priority": new.priority}
            if new.sla_due < case.sla_due:
                update["sla_due"] = new.sla_due
            raised = CaseEntry(
                at=new.opened_at,
                kind="raised",
                detail={"reason": new.reason, "priority": new.priority},
            )
            update["history"] = [*case.history, raised]
            self._open[account_id] = case.model_copy(update=update)

    async def open_cases(self) -> list[Case]:
        return list(self._open.values())

    async def due_cases(self, now: datetime) -> list[Case]:
        return [c for c in self._open.values() if is_due(c, now)]

    async def case(self, account_id: str) -> Case | None:
        return self._open.get(account_id)

    async def closed_cases(self, account_id: str, limit: int = 20) -> list[Case]:
        return self._closed.get(account_id, [])[-limit:] if limit > 0 else []

    def _the(self, account_id: str, case_id: str) -> Case:
        case = self._open.get(account_id)
        if case is None or case.id != case_id:
            raise CaseNotFound(f"account {account_id} has no open case {case_id}")
        return case

    def _put(self, case: Case, entry: CaseEntry, **update: object) -> Case:
        history = [*case.history, entry] if entry.kind != "note" else case.history
        notes = [*case.notes, entry] if entry.kind == "note" else case.notes
        new = case.model_copy(
            update={**update, "version": case.version + 1, "history": history, "notes": notes}
        )
        self._open[case.account_id] = new
        return new

    async def claim(self, account_id: str, case_id: str, agent: str, at: datetime) -> Case:
        case = self._the(account_id, case_id)
        if case.state == "claimed":
            if case.holder == agent:
                return case
            raise CaseHeld(case_id, case.holder or "")
        entry = CaseEntry(at=at, kind="claimed", by=agent)
        return self._put(case, entry, state="claimed", holder=agent, claimed_at=at)

    async def assign(
        self,
        account_id: str,
        case_id: str,
        *,
        by: str,
        holder: str | None,
        required: Required,
        at: datetime,
    ) -> Case:
        case = self._the(account_id, case_id)
        if required == "holder" and case.holder != by:
            if case.holder is None:
                raise CaseConflict(f"case {case_id} is not held by anyone")
            raise CaseHeld(case_id, case.holder)
        entry = assignment_entry(by, holder, at)
        if holder is None:
            return self._put(case, entry, state="waiting", holder=None, claimed_at=None)
        return self._put(case, entry, state="claimed", holder=holder, claimed_at=at)

    async def add_note(
        self, account_id: str, case_id: str, by: str, text: str, at: datetime
    ) -> Case:
        case = self._the(account_id, case_id)
        return self._put(case, CaseEntry(at=at, kind="note", by=by, detail={"text": text}))

    async def expire(self, case: Case, now: datetime, notify: bool) -> bool:
        current = self._open.get(case.account_id)
        if (
            current is None
            or current.id != case.id
            or current.state != "waiting"
            or current.expired_at is not None
            or current.sla_due > now
        ):
            return False
        entry = CaseEntry(at=now, kind="expired", detail={"notify": notify})
        self._put(current, entry, expired_at=now)
        self._store._audit[case.account_id].append(expiry_audit(current, now, notify))
        return True

    async def repair_index(self) -> int:
        return 0  # the open cases are the index

    async def find_unmatched(self, provider: str, msg_id: str) -> InboundSms | None:
        for sms in self._store._unmatched:
            if sms.provider == provider and sms.msg_id == msg_id:
                return sms
        return None

    async def take_unmatched(
        self, sms: InboundSms, outcome: Outcome, by: str, at: datetime, account: str | None
    ) -> None:
        if sms not in self._store._unmatched:
            raise UnmatchedGone(f"message {sms.provider}:{sms.msg_id} was handled already")
        self._store._unmatched.remove(sms)
        self._handled.append(handled_record(sms, outcome, by, at, account))

    async def handled_unmatched(self, limit: int = 100) -> list[dict[str, object]]:
        return self._handled[-limit:] if limit > 0 else []


def linked_event(sms: InboundSms) -> tuple[QueuedEvent, str]:
    """The inbound event an unmatched message becomes on the account it is linked to, and
    its de-duplication key: the one ``Pipeline.receive`` uses, so a message is queued once
    whoever links it and however often (two agents clicking, a provider's late retry)."""
    event = QueuedEvent(kind="inbound", at=sms.received_at, inbound=sms)
    return event, f"msg:{sms.provider}:{sms.msg_id}"

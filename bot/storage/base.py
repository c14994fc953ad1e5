"""The store seam. Every implementation passes the same contract suite (tests/service).

Design (why it looks like this):
- Each account has a FIFO queue of events. A webhook only *enqueues* (atomically with the
  de-duplication claim) before acknowledging, so an acknowledged message is durable.
- Events are processed one at a time per account, by whoever holds the account's lock; the
  lock is taken *before* the conversation is read. ``commit`` removes the processed event and
  writes the conversation, audit and outbox in one atomic step, and only if the event is still
  at the head of the queue: a crash anywhere before it leaves the event to be processed again,
  a crash after it leaves nothing to redo.
- A case of the agent console's queue (``bot.desk``) is opened, raised or resolved by the
  commit of the event that did it (``case``), in the same atomic step: a handoff that is
  committed has its case, and an agent's resolving event closes its case exactly once.
- Timers live in the conversation (the dialog engine's data); the store keeps an index of the
  earliest due time per account so a scanner can find due conversations.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from bot.desk.case import CaseChange, CaseEntry
from bot.outbound.record import OutboundRecord
from bot.records import AccountRecord, AuditEntry, Outbound, QueuedEvent, SendRecord
from bot.storage import keys
from bot.telemetry import metrics
from bot.transport.inbound import InboundSms
from common.errors import SmsbotError

if TYPE_CHECKING:
    from bot.storage.campaigns import CampaignStore
    from bot.storage.desk import DeskStore


@dataclass(frozen=True)
class Loaded:
    account: AccountRecord | None
    conversation: str | None
    deferred: list[Outbound]
    head: QueuedEvent | None = None  # filled by AccountLock.acquire_and_load


@dataclass(frozen=True)
class Progress:
    """What :meth:`AccountLock.commit` left."""

    committed: bool  # False: the event was no longer at the head (someone else committed it)
    held: bool  # False: the lease was lost; its new owner goes on (nothing below is filled)
    head: QueuedEvent | None  # the next event to process
    # When the queue is empty: every message still queued (not yet through the gate). They
    # stay stored until a gate step moves each one (bot.outbound.record).
    outbox: list[Outbound]
    # With ``release_if_idle``: nothing was queued nor left to send, so the lock was let go
    # (one round trip less: no separate release), and whether events arrived meanwhile.
    released: bool = False
    waiting: bool = False


@dataclass(frozen=True)
class GateFacts:
    opted_out: bool
    history: list[SendRecord]
    preferences: str | None  # JSON, from ``get_meta(…, "preferences")``
    contacted: bool  # anything was ever sent to this account (``get_meta(…, "contacted")``)
    invalid_number: bool = False  # a provider said the number cannot be reached


AUDIT_READ = 1000  # the audit entries a report reads per account (read_audit's default)


@dataclass(frozen=True)
class AccountFacts:
    """What a report over many accounts reads of each (campaign status and export)."""

    account: AccountRecord | None
    conversation: str | None  # JSON, as ``get_conversation``
    records: list[OutboundRecord]  # as ``outbound_records``
    audit: list[AuditEntry]  # the newest ``AUDIT_READ`` entries, as ``read_audit``
    opted_out: bool  # the account's phone is on the suppression list
    handed_off: bool  # a case was ever opened for it (open or resolved)


NO_FACTS = AccountFacts(  # an unknown account's
    account=None, conversation=None, records=[], audit=[], opted_out=False, handed_off=False
)


def hidden_deferred(deferred: Sequence[Outbound], written: datetime | None) -> datetime | None:
    """The earliest deferred message's time if a due time ``written`` would hide it.

    Every step that sets an account's due time later (a commit's index step, ``set_due``)
    reads the deferred list after writing and lowers the time to this. A sender puts a message
    back to the gate off the account's lock (bot.outbound.settle: due time lowered, message
    back, due time lowered again); a drain that read the deferred list before the message
    arrived may raise the time past it in between. One of the two sees the other. Found by
    test_outbound_crash (a message held until the account's next timer)."""
    waiting = [m.not_before for m in deferred if m.not_before]
    if waiting and (written is None or min(waiting) < written):
        return min(waiting)
    return None


@dataclass(frozen=True)
class Transition:
    """One step of an outbound record (bot.outbound.record), applied atomically by
    :meth:`Store.move` together with everything that step implies.

    ``expected`` is the version the new record replaces (compare-and-set); None means the
    record is taken out of the account's outbox or deferred list (a gate step): it applies
    only if the message is still there.
    """

    record: OutboundRecord
    expected: int | None
    audit: Sequence[AuditEntry] = ()
    defer: bool = False  # keep the message in the deferred list (its not_before is set)
    charge: SendRecord | None = None  # add to the phone's ledger (a reserved send)
    release: SendRecord | None = None  # take back out of the ledger (permanent failure)
    due: datetime | None = None  # the senders' index: look at the record again then
    undue: bool = False  # out of the senders' index (settled)
    first_contact: bool = False  # the account's ``contacted`` mark (its first send)
    event: QueuedEvent | None = None  # queued for the account (delivery_failed)
    opt_out: bool = False  # the provider says the number unsubscribed
    invalid_number: bool = False  # the provider says the number cannot be reached
    provider_index: tuple[str, str] | None = None  # (carrier, provider id) -> this record
    # The sandbox carrier's record of the message ("what left the machine" in the demo),
    # written with the outcome: the sandbox's send then costs no store call of its own.
    sandbox: Outbound | None = None


# bot.retention: what an edit does to one stored item. An audit edit returns the entry itself
# (unchanged), a new entry (redacted) or None (deleted); a record edit returns None
# (unchanged) or the redacted record. Each item is named by an id that holds no personal text.
AuditEdit = Callable[[AuditEntry], AuditEntry | None]
RecordEdit = Callable[[OutboundRecord], OutboundRecord | None]
# A closed case's note as retention leaves it; None: unchanged.
NoteEdit = Callable[[CaseEntry], CaseEntry | None]
RetentionAction = Literal["delete", "redact"]
# Kept collections outside any account, swept by age (bot.retention).
KeptKind = Literal["unmatched", "unmatched_handled", "unmatched_receipts", "sandbox"]


class StoreUnavailable(SmsbotError):
    """The backing store cannot be reached; callers answer 503 so providers retry."""


class AccountLock(ABC):
    """A per-account lock that works across processes (try-acquire; never blocks).

    Besides the three primitives, a drain uses three combined steps (acquire and read, commit
    and go on, release and look again). Their definitions here are built from the store's
    primitives; the Redis lock overrides each with one script, so that a drain costs three
    round trips whatever it does, two when its last commit may let go of the lock itself
    (nothing queued, nothing to send: ``release_if_idle``) (bench/inbound.py).
    """

    def __init__(self, store: Store, account_id: str) -> None:
        self.store = store
        self.account_id = account_id

    @abstractmethod
    async def acquire(self) -> bool: ...

    @abstractmethod
    async def refresh(self) -> bool:
        """Extends the lease; False if it was lost (another process may own the account)."""

    @abstractmethod
    async def release(self) -> None: ...

    async def enqueue_and_acquire(
        self, event: QueuedEvent, dedup: str | None = None
    ) -> tuple[bool, Loaded | None]:
        """:meth:`Store.enqueue`, then, if it was accepted, :meth:`acquire_and_load`: (accepted,
        what the lock's new holder reads, or None when someone else holds the lock and will
        find the event). The caller that got a :class:`Loaded` drains the account."""
        if not await self.store.enqueue(self.account_id, event, dedup):
            return False, None
        return True, await self.acquire_and_load()

    async def acquire_and_load(self) -> Loaded | None:
        """Takes the lock and, only then, reads the head event and what processing it needs;
        None if someone else holds the lock."""
        if not await self.acquire():
            return None
        loaded = await self.store.load(self.account_id)
        return replace(loaded, head=await self.store.head(self.account_id))

    async def commit(
        self,
        event_id: str,
        conversation: str | None,
        audit: Sequence[AuditEntry],
        outbox: Sequence[Outbound],
        next_due: datetime | None,
        *,
        release_if_idle: bool = False,
        case: CaseChange | None = None,
    ) -> Progress:
        """:meth:`Store.commit`, then extends the lease and reads the next event; when there
        is none, reads the outbox (:meth:`Store.queued`). With
        ``release_if_idle``, when there is neither a next event nor anything to send, also
        :meth:`release_and_check` (the caller has nothing left to do under the lock)."""
        committed = await self.store.commit(
            self.account_id, event_id, conversation, audit, outbox, next_due, case=case
        )
        if not await self.refresh():
            return Progress(committed, held=False, head=None, outbox=[])
        head = await self.store.head(self.account_id)
        taken = await self.store.queued(self.account_id) if head is None else []
        if release_if_idle and head is None and not taken:
            waiting = await self.release_and_check()
            return Progress(committed, True, None, [], released=True, waiting=waiting)
        return Progress(committed, held=True, head=head, outbox=taken)

    async def release_and_check(self) -> bool:
        """Releases the lock, then looks: True if events are waiting. Released first, looked
        second, so an event queued meanwhile is never left without someone to drain it."""
        await self.release()
        return await self.store.head(self.account_id) is not None


class Store(ABC):
    desk: DeskStore  # the agent console's cases (bot.storage.desk), on the same backend
    campaigns: CampaignStore  # campaigns and their members (bot.storage.campaigns)

    # --- lifecycle ---
    # Every ``limit`` argument: at most that many of the newest items; 0 or less gives none.

    @abstractmethod
    async def ping(self) -> None:
        """Raises StoreUnavailable when the store cannot be used."""

    @abstractmethod
    async def close(self) -> None: ...

    # --- accounts ---
    @abstractmethod
    async def upsert_account(self, account: AccountRecord) -> bool:
        """Creates or replaces the account and its phone index; True if it was new."""

    @abstractmethod
    async def get_account(self, account_id: str) -> AccountRecord | None: ...

    @abstractmethod
    async def account_ids(self) -> list[str]:
        """Every account id (reports; may be slow)."""

    @abstractmethod
    async def get_meta(self, account_id: str, key: str) -> str | None:
        """Small per-account facts kept beside the conversation (borrower preferences)."""

    @abstractmethod
    async def set_meta(self, account_id: str, key: str, value: str) -> None: ...

    @abstractmethod
    async def find_account(self, phone: str) -> str | None:
        """The account id of an E.164 phone number."""

    # --- per-account event queue ---
    @abstractmethod
    async def enqueue(self, account_id: str, event: QueuedEvent, dedup: str | None = None) -> bool:
        """Appends ``event``; with ``dedup``, atomically only if that key was never claimed for
        this account (provider retries, repeated payment references). False means a duplicate.
        Claims are kept at least 30 days (Redis expires them then)."""

    @abstractmethod
    async def head(self, account_id: str) -> QueuedEvent | None:
        """The oldest unprocessed event of the account."""

    @abstractmethod
    async def pending_accounts(self) -> list[str]:
        """Accounts with unprocessed events or unsent outbound messages (recovery)."""

    @abstractmethod
    async def get_conversation(self, account_id: str) -> str | None:
        """The conversation as JSON (the dialog engine's data)."""

    @abstractmethod
    async def load(self, account_id: str) -> Loaded:
        """The account, its conversation and its deferred messages, read together (one round
        trip on Redis: this runs for every event)."""

    @abstractmethod
    async def gate_facts(self, account_id: str, phone: str, since: datetime) -> GateFacts:
        """What the compliance gate needs about a recipient, read together (every send)."""

    @abstractmethod
    async def commit(
        self,
        account_id: str,
        event_id: str,
        conversation: str | None,
        audit: Sequence[AuditEntry],
        outbox: Sequence[Outbound],
        next_due: datetime | None,
        *,
        case: CaseChange | None = None,
    ) -> bool:
        """Atomically: pop ``event_id`` from the head of the queue, save the conversation
        (``None`` leaves the stored one as it is),
        append audit entries and outbound messages, apply ``case`` to the account's case
        (``bot.storage.desk``), index the next due timer. False if
        ``event_id`` is no longer at the head: then nothing changes, except that the due-timer
        index may have been lowered to ``next_due`` (never raised or removed; an early index
        only costs a tick that finds nothing due)."""

    @abstractmethod
    def lock(self, account_id: str, ttl_ms: int = 30_000) -> AccountLock: ...

    # --- timers ---
    @abstractmethod
    async def backlog(self, now: datetime) -> dict[str, tuple[int, float]]:
        """Per backlog (``timers``: conversations due; ``sends``: records the senders should
        look at), how many are due by ``now`` and how many seconds the oldest has been due
        (0 when none): /metrics samples it."""

    @abstractmethod
    async def due_accounts(self, now: datetime, limit: int = 500) -> list[str]:
        """Accounts whose earliest timer is due at ``now``."""

    @abstractmethod
    async def lower_due(self, account_id: str, at: datetime) -> None:
        """Makes the account due at ``at`` at the latest (never later than it was): a message
        sent back to the gate step is looked at then."""

    @abstractmethod
    async def set_due(self, account_id: str, at: datetime | None) -> None:
        """Sets the account's due time exactly (None: nothing due), outside a commit: after
        the outbox was flushed and messages were deferred or sent. Never later than a
        deferred message of the account (``hidden_deferred``)."""

    # --- outbound records (bot.outbound.record) ---
    @abstractmethod
    async def queued(self, account_id: str) -> list[Outbound]:
        """The account's outbox: committed messages not yet through the gate, oldest first."""

    @abstractmethod
    async def deferred(self, account_id: str) -> list[Outbound]:
        """Messages the gate deferred (``not_before`` set), oldest first."""

    async def move(self, t: Transition) -> bool:
        """Applies one transition atomically for the account's own data (record, outbox or
        deferred list, audit, queued event, contacted mark); False (and nothing changed) when
        the record is no longer where ``t.expected`` says. The global parts around it follow
        one rule: an index or a ledger charge is written before the step and removed after
        it, so a crash in between leaves them early or over-counted, never missing."""
        moved = await self._move(t)
        if moved:  # every outbound state entered, counted once whoever moved it
            metrics.transition(t)
        return moved

    @abstractmethod
    async def _move(self, t: Transition) -> bool:
        """:meth:`move` as the implementation does it."""

    @abstractmethod
    async def outbound(self, account_id: str, message_id: str) -> OutboundRecord | None:
        """The record past the outbox (gated or later); None if it is still queued or unknown."""

    @abstractmethod
    async def outbound_records(self, account_id: str) -> list[OutboundRecord]:
        """Every record of the account (queued ones included), oldest first."""

    @abstractmethod
    async def due_sends(self, now: datetime, limit: int = 500) -> list[tuple[str, str]]:
        """(account id, message id) of records the senders should look at by ``now``."""

    @abstractmethod
    async def forget_send(self, account_id: str, message_id: str) -> None:
        """Drops a record from the senders' index (it has nothing left for them)."""

    @abstractmethod
    async def message_account(self, message_id: str) -> str | None:
        """The account of a message that reached the senders (receipts carry our id)."""

    @abstractmethod
    async def locate(self, carrier: str, provider_id: str) -> tuple[str, str] | None:
        """(account id, message id) of a provider's message id."""

    @abstractmethod
    async def add_unmatched_receipt(self, receipt_json: str) -> None:
        """A delivery receipt no record matches (kept for people, not an error)."""

    @abstractmethod
    async def list_unmatched_receipts(self, limit: int = 100) -> list[str]: ...

    @abstractmethod
    async def take_tokens(self, bucket: str, rate: float, burst: int, now: datetime) -> float:
        """Token bucket shared by every process: 0 if a token was taken, else the seconds to
        wait before trying again (nothing taken)."""

    async def take_up_to(self, bucket: str, rate: float, burst: int, n: int, now: datetime) -> int:
        """Takes up to ``n`` tokens of the same bucket at once; how many were taken. Redis
        does it in one script (a campaign's round asks for thousands: one call each cost a
        script call per account released, bench/campaign.py)."""
        waits = [await self.take_tokens(bucket, rate, burst, now) for _ in range(max(0, n))]
        return sum(1 for w in waits if w == 0)

    # --- the per-phone ledger of sent messages (frequency caps) ---
    @abstractmethod
    async def record_send(self, phone: str, record: SendRecord) -> None:
        """Appends to the phone's ledger (entries older than 8 days may be dropped)."""

    @abstractmethod
    async def send_history(self, phone: str, since: datetime) -> list[SendRecord]:
        """The phone's sends at or after ``since``, oldest first."""

    # --- suppression list ---
    @abstractmethod
    async def add_opt_out(self, phone: str) -> None: ...

    @abstractmethod
    async def is_opted_out(self, phone: str) -> bool: ...

    @abstractmethod
    async def remove_opt_out(self, phone: str) -> None:
        """Only for a lawful re-subscription (US START with no dispute or cease hold)."""

    # --- audit ---
    @abstractmethod
    async def append_audit(self, account_id: str, entries: Sequence[AuditEntry]) -> None: ...

    @abstractmethod
    async def read_audit(self, account_id: str, limit: int = 1000) -> list[AuditEntry]: ...

    # --- messages from unknown numbers, kept for agents ---
    @abstractmethod
    async def add_unmatched(self, sms: InboundSms) -> bool:
        """Keeps it once per provider message id; False for a duplicate."""

    @abstractmethod
    async def list_unmatched(self, limit: int = 100) -> list[InboundSms]: ...

    # --- reports ---
    async def account_facts(self, account_ids: Sequence[str]) -> list[AccountFacts]:
        """Each account's :class:`AccountFacts`, in order. Built from the methods above; the
        Redis store reads a batch in two round trips instead (bot.storage.redis_reports)."""
        return list(await asyncio.gather(*(self._facts(a) for a in account_ids)))

    async def _facts(self, account_id: str) -> AccountFacts:
        if not keys.usable_account_id(account_id):
            return NO_FACTS  # no key can be built for it (and no AccountRecord has such an id)
        account, conversation, records, audit, case, closed = await asyncio.gather(
            self.get_account(account_id),
            self.get_conversation(account_id),
            self.outbound_records(account_id),
            self.read_audit(account_id, AUDIT_READ),
            self.desk.case(account_id),
            self.desk.closed_cases(account_id, limit=1),
        )
        return AccountFacts(
            account=account,
            conversation=conversation,
            records=records,
            audit=audit,
            opted_out=await self.is_opted_out(account.phone) if account else False,
            handed_off=case is not None or bool(closed),
        )

    # --- sandbox provider's record of "sent" messages ---
    @abstractmethod
    async def record_sandbox(self, message: Outbound) -> None: ...

    @abstractmethod
    async def list_sandbox(self, limit: int = 200) -> list[Outbound]: ...

    # --- retention (bot.retention) -----------------------------------------------------------
    # Each lists what it would change with ``apply=False`` and changes exactly what it lists
    # with ``apply=True``; safe beside a running service (atomic compare-and-set steps on
    # Redis: an item that changed meanwhile is left for the next run).

    @abstractmethod
    async def edit_audit(
        self, account_id: str, edit: AuditEdit, *, apply: bool
    ) -> list[tuple[str, RetentionAction]]:
        """Applies ``edit`` to every audit entry of the account: (entry id, action) of each
        entry it redacts or deletes."""

    @abstractmethod
    async def edit_outbound(self, account_id: str, edit: RecordEdit, *, apply: bool) -> list[str]:
        """Applies ``edit`` to every record past the outbox: the ids of those it redacts."""

    @abstractmethod
    async def edit_case_notes(self, account_id: str, edit: NoteEdit, *, apply: bool) -> list[str]:
        """Applies ``edit`` to the agents' notes of the account's closed cases (an open case
        is being worked on): ``case-id/note-number`` of each note it changes."""

    @abstractmethod
    async def sweep_kept(self, kind: KeptKind, before: datetime, *, apply: bool) -> list[str]:
        """Deletes the items of a kept collection older than ``before``: their ids. Items
        without a time of their own (a receipt that carries none) are kept."""

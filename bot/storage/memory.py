"""In-process store: the zero-set-up default. One process only; nothing survives a restart."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from datetime import datetime

from bot.desk.case import CaseChange
from bot.outbound.record import OutboundRecord, queued
from bot.records import AccountRecord, AuditEntry, Outbound, QueuedEvent, SendRecord
from bot.storage import retention_items as ri
from bot.storage.base import (
    AccountLock,
    AuditEdit,
    GateFacts,
    KeptKind,
    Loaded,
    NoteEdit,
    RecordEdit,
    RetentionAction,
    Store,
    Transition,
    hidden_deferred,
)
from bot.storage.campaigns import MemoryCampaigns
from bot.storage.desk import MemoryDesk
from bot.transport.inbound import InboundSms


class _MemoryLock(AccountLock):
    def __init__(self, store: MemoryStore, held: set[str], account_id: str) -> None:
        super().__init__(store, account_id)
        self._held = held
        self._id = account_id
        self._mine = False

    async def acquire(self) -> bool:
        # No await between the test and the set: atomic on the event loop.
        if self._id in self._held:
            return False
        self._held.add(self._id)
        self._mine = True
        return True

    async def refresh(self) -> bool:
        return self._mine and self._id in self._held

    async def release(self) -> None:
        if self._mine:
            self._held.discard(self._id)
            self._mine = False


class MemoryStore(Store):
    def __init__(self) -> None:
        self._accounts: dict[str, AccountRecord] = {}
        self._phones: dict[str, str] = {}
        self._queues: defaultdict[str, deque[QueuedEvent]] = defaultdict(deque)
        self._claimed: set[tuple[str, str]] = set()
        self._conversations: dict[str, str] = {}
        self._audit: defaultdict[str, list[AuditEntry]] = defaultdict(list)
        self._outbox: defaultdict[str, deque[Outbound]] = defaultdict(deque)
        self._due: dict[str, datetime] = {}
        self._held: set[str] = set()
        self._opted_out: set[str] = set()
        self._unmatched: list[InboundSms] = []
        self._unmatched_ids: set[str] = set()
        self._sandbox: deque[Outbound] = deque(maxlen=10_000)
        self._meta: defaultdict[str, dict[str, str]] = defaultdict(dict)
        self._deferred: defaultdict[str, list[Outbound]] = defaultdict(list)
        self._sends: defaultdict[str, list[SendRecord]] = defaultdict(list)
        # Outbound records past the outbox, per account in creation order; the senders'
        # index; our id and the providers' ids -> account; numbers no provider can reach.
        self._records: defaultdict[str, dict[str, OutboundRecord]] = defaultdict(dict)
        self._send_due: dict[tuple[str, str], datetime] = {}
        self._message_accounts: dict[str, str] = {}
        self._provider_ids: dict[tuple[str, str], tuple[str, str]] = {}
        self._invalid: set[str] = set()
        self._unmatched_receipts: deque[str] = deque(maxlen=10_000)
        self._buckets: dict[str, tuple[float, float]] = {}  # tokens, at (epoch seconds)
        self.desk: MemoryDesk = MemoryDesk(self)
        self.campaigns: MemoryCampaigns = MemoryCampaigns()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def upsert_account(self, account: AccountRecord) -> bool:
        old = self._accounts.get(account.id)
        # A recycled number may already point at another account: only drop our own entry.
        if (
            old is not None
            and old.phone != account.phone
            and self._phones.get(old.phone) == account.id
        ):
            del self._phones[old.phone]
        self._accounts[account.id] = account
        self._phones[account.phone] = account.id
        return old is None

    async def get_account(self, account_id: str) -> AccountRecord | None:
        return self._accounts.get(account_id)

    async def find_account(self, phone: str) -> str | None:
        return self._phones.get(phone)

    async def account_ids(self) -> list[str]:
        return sorted(self._accounts)

    async def get_meta(self, account_id: str, key: str) -> str | None:
        return self._meta.get(account_id, {}).get(key)

    async def set_meta(self, account_id: str, key: str, value: str) -> None:
        self._meta[account_id][key] = value

    async def deferred(self, account_id: str) -> list[Outbound]:
        return list(self._deferred.get(account_id, []))

    async def record_send(self, phone: str, record: SendRecord) -> None:
        self._sends[phone].append(record)

    async def send_history(self, phone: str, since: datetime) -> list[SendRecord]:
        return [r for r in self._sends.get(phone, []) if r.at >= since]

    async def enqueue(self, account_id: str, event: QueuedEvent, dedup: str | None = None) -> bool:
        if dedup is not None:
            key = (account_id, dedup)
            if key in self._claimed:
                return False
            self._claimed.add(key)
        self._queues[account_id].append(event)
        return True

    async def head(self, account_id: str) -> QueuedEvent | None:
        q = self._queues.get(account_id)
        return q[0] if q else None

    async def pending_accounts(self) -> list[str]:
        ids = {a for a, q in self._queues.items() if q} | {a for a, q in self._outbox.items() if q}
        return sorted(ids)

    async def get_conversation(self, account_id: str) -> str | None:
        return self._conversations.get(account_id)

    async def load(self, account_id: str) -> Loaded:
        return Loaded(
            self._accounts.get(account_id),
            self._conversations.get(account_id),
            list(self._deferred.get(account_id, [])),
        )

    async def gate_facts(self, account_id: str, phone: str, since: datetime) -> GateFacts:
        return GateFacts(
            opted_out=phone in self._opted_out,
            history=[r for r in self._sends.get(phone, []) if r.at >= since],
            preferences=self._meta.get(account_id, {}).get("preferences"),
            contacted="contacted" in self._meta.get(account_id, {}),
            invalid_number=phone in self._invalid,
        )

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
        q = self._queues.get(account_id)
        if not q or q[0].id != event_id:
            return False
        q.popleft()
        if conversation is not None:
            self._conversations[account_id] = conversation
        self._audit[account_id].extend(audit)
        self._outbox[account_id].extend(outbox)
        if case:
            self.desk.apply(account_id, case)
        self._set_due(account_id, next_due)
        return True

    def lock(self, account_id: str, ttl_ms: int = 30_000) -> AccountLock:
        return _MemoryLock(self, self._held, account_id)

    async def backlog(self, now: datetime) -> dict[str, tuple[int, float]]:
        def of(due: Iterable[datetime]) -> tuple[int, float]:
            late = [at for at in due if at <= now]
            return len(late), (now - min(late)).total_seconds() if late else 0.0

        return {"timers": of(self._due.values()), "sends": of(self._send_due.values())}

    async def due_accounts(self, now: datetime, limit: int = 500) -> list[str]:
        if limit <= 0:
            return []
        due = sorted((at, a) for a, at in self._due.items() if at <= now)
        return [a for _, a in due[:limit]]

    async def lower_due(self, account_id: str, at: datetime) -> None:
        current = self._due.get(account_id)
        self._due[account_id] = at if current is None else min(current, at)

    async def set_due(self, account_id: str, at: datetime | None) -> None:
        self._set_due(account_id, at)

    def _set_due(self, account_id: str, at: datetime | None) -> None:
        # Never past a deferred message (base.hidden_deferred; here in the same step).
        at = hidden_deferred(self._deferred.get(account_id, []), at) or at
        if at is None:
            self._due.pop(account_id, None)
        else:
            self._due[account_id] = at

    async def queued(self, account_id: str) -> list[Outbound]:
        return list(self._outbox.get(account_id, ()))

    async def _move(self, t: Transition) -> bool:
        # No await inside: atomic on the event loop, like one script on Redis.
        record = t.record
        a, mid = record.account_id, record.id
        records = self._records[a]
        if t.sandbox is not None:  # as on Redis: written before the step, whatever it finds
            self._sandbox.append(t.sandbox)
        if t.expected is None:
            if not (_pop(self._outbox.get(a), mid) or _pop(self._deferred.get(a), mid)):
                return False
        else:
            current = records.get(mid)
            if current is None or current.version != t.expected:
                return False
        records[mid] = record
        if t.defer:
            self._deferred[a].append(record.message)
        self._audit[a].extend(t.audit)
        if t.event is not None:
            self._queues[a].append(t.event)
        phone = record.message.phone
        if t.charge is not None:
            # As on Redis, where the charge is a sorted-set member without its time: the same
            # charge again (a message back from the gate, its release lost) replaces it.
            c = t.charge
            same = (c.kind, c.message_id, c.text_hash, c.account_id)
            ledger = self._sends[phone]
            ledger[:] = [
                r for r in ledger if (r.kind, r.message_id, r.text_hash, r.account_id) != same
            ]
            ledger.append(c)
            if t.first_contact:
                self._meta[a].setdefault("contacted", t.charge.at.isoformat())
        if t.release is not None and t.release in self._sends.get(phone, ()):
            self._sends[phone].remove(t.release)
        if t.due is not None:
            self._send_due[(a, mid)] = t.due
            self._message_accounts[mid] = a
        if t.undue:
            self._send_due.pop((a, mid), None)
        if t.opt_out:
            self._opted_out.add(phone)
        if t.invalid_number:
            self._invalid.add(phone)
        if t.provider_index is not None:
            self._provider_ids[t.provider_index] = (a, mid)
        return True

    async def outbound(self, account_id: str, message_id: str) -> OutboundRecord | None:
        return self._records.get(account_id, {}).get(message_id)

    async def outbound_records(self, account_id: str) -> list[OutboundRecord]:
        past = list(self._records.get(account_id, {}).values())
        return past + [queued(m) for m in self._outbox.get(account_id, ())]

    async def due_sends(self, now: datetime, limit: int = 500) -> list[tuple[str, str]]:
        if limit <= 0:
            return []
        due = sorted((at, key) for key, at in self._send_due.items() if at <= now)
        return [key for _, key in due[:limit]]

    async def forget_send(self, account_id: str, message_id: str) -> None:
        self._send_due.pop((account_id, message_id), None)

    async def message_account(self, message_id: str) -> str | None:
        return self._message_accounts.get(message_id)

    async def locate(self, carrier: str, provider_id: str) -> tuple[str, str] | None:
        return self._provider_ids.get((carrier, provider_id))

    async def add_unmatched_receipt(self, receipt_json: str) -> None:
        self._unmatched_receipts.append(receipt_json)

    async def list_unmatched_receipts(self, limit: int = 100) -> list[str]:
        return list(self._unmatched_receipts)[-limit:] if limit > 0 else []

    async def take_tokens(self, bucket: str, rate: float, burst: int, now: datetime) -> float:
        if await self.take_up_to(bucket, rate, burst, 1, now):
            return 0.0
        return (1.0 - self._buckets[bucket][0]) / rate

    async def take_up_to(self, bucket: str, rate: float, burst: int, n: int, now: datetime) -> int:
        t = now.timestamp()
        tokens, at = self._buckets.get(bucket, (float(burst), t))
        tokens = min(float(burst), tokens + max(0.0, t - at) * rate)
        taken = max(0, min(n, int(tokens)))
        self._buckets[bucket] = (tokens - taken, t)
        return taken

    async def add_opt_out(self, phone: str) -> None:
        self._opted_out.add(phone)

    async def is_opted_out(self, phone: str) -> bool:
        return phone in self._opted_out

    async def remove_opt_out(self, phone: str) -> None:
        self._opted_out.discard(phone)

    async def append_audit(self, account_id: str, entries: Sequence[AuditEntry]) -> None:
        self._audit[account_id].extend(entries)

    async def read_audit(self, account_id: str, limit: int = 1000) -> list[AuditEntry]:
        if limit <= 0:
            return []
        return self._audit.get(account_id, [])[-limit:]

    async def add_unmatched(self, sms: InboundSms) -> bool:
        key = f"{sms.provider}:{sms.msg_id}"
        if key in self._unmatched_ids:
            return False
        self._unmatched_ids.add(key)
        self._unmatched.append(sms)
        return True

    async def list_unmatched(self, limit: int = 100) -> list[InboundSms]:
        if limit <= 0:
            return []
        return self._unmatched[-limit:]

    async def record_sandbox(self, message: Outbound) -> None:
        self._sandbox.append(message)

    async def list_sandbox(self, limit: int = 200) -> list[Outbound]:
        if limit <= 0:
            return []
        return list(self._sandbox)[-limit:]

    # --- retention: no await inside, so each is atomic on the event loop -----------------

    async def edit_audit(
        self, account_id: str, edit: AuditEdit, *, apply: bool
    ) -> list[tuple[str, RetentionAction]]:
        done: list[tuple[str, RetentionAction]] = []
        kept: list[AuditEntry] = []
        for i, entry in enumerate(self._audit.get(account_id, [])):
            new = edit(entry)
            if new is None:
                done.append((ri.audit_item(i, entry), "delete"))
                continue
            if new is not entry:
                done.append((ri.audit_item(i, entry), "redact"))
            kept.append(new)
        if apply and done:
            self._audit[account_id] = kept
        return done

    async def edit_outbound(self, account_id: str, edit: RecordEdit, *, apply: bool) -> list[str]:
        records = self._records.get(account_id, {})
        changed = {mid: new for mid, r in records.items() if (new := edit(r)) is not None}
        if apply:
            records.update(changed)
        return list(changed)

    async def edit_case_notes(self, account_id: str, edit: NoteEdit, *, apply: bool) -> list[str]:
        closed = self.desk._closed.get(account_id, [])
        done: list[str] = []
        for n, case in enumerate(closed):
            edited = [edit(note) for note in case.notes]
            changed = [f"{case.id}/{i}" for i, new in enumerate(edited) if new is not None]
            if changed:
                done += changed
                if apply:
                    notes = [new or old for new, old in zip(edited, case.notes, strict=True)]
                    closed[n] = case.model_copy(update={"notes": notes})
        return done

    async def sweep_kept(self, kind: KeptKind, before: datetime, *, apply: bool) -> list[str]:
        if kind == "unmatched":
            gone = [s for s in self._unmatched if ri.older(ri.unmatched_item(s), before)]
            if apply:
                self._unmatched = [s for s in self._unmatched if s not in gone]
            return [ri.unmatched_item(s)[0] for s in gone]
        if kind == "unmatched_handled":
            handled = self.desk._handled
            old = [i for i, h in enumerate(handled) if ri.older(ri.handled_item(h), before)]
            names = [ri.handled_item(handled[i])[0] for i in old]
            if apply:
                self.desk._handled = [h for i, h in enumerate(handled) if i not in set(old)]
            return names
        if kind == "unmatched_receipts":
            found = [r for r in self._unmatched_receipts if ri.older(ri.receipt_item(r), before)]
            if apply:
                for r in found:
                    self._unmatched_receipts.remove(r)
            return [ri.receipt_item(r)[0] for r in found]
        sent = [m for m in self._sandbox if ri.older(ri.sandbox_item(m), before)]
        if apply:
            for m in sent:
                self._sandbox.remove(m)
        return [m.id for m in sent]


def _pop(items: deque[Outbound] | list[Outbound] | None, message_id: str) -> bool:
    """Removes the message from an outbox or deferred list; False if it is not there."""
    for m in items or ():
        if m.id == message_id:
            items.remove(m)  # type: ignore[union-attr]
            return True
    return False

"""The retention sweep: what personal data goes when, and what stays because the law or the
service needs it (《个人信息保护法》 arts. 19, 47; compliance.md CN-REC-01/02, US-REC-01).

Per kind (the days are ``config/retention.yaml``'s, :mod:`bot.retention.policy`):

- ``audit_text`` — an audit entry older than ``message_text_days`` loses the words it holds:
  a reply's or a message's ``text`` (inbound, send, agent_message), an agent's ``note``, and
  the reply a dialog step quotes (``borrower: …`` becomes ``borrower replied``).
  The entry itself stays, marked ``redacted``: "inbound at T, provider, message id", "the
  reading was stop", "message X sent with template Y", the gate's verdicts and rules, the
  steps, handoffs, payments. That is the evidence of every contact and decision the lender
  must keep (CN-REC-01: at least 2 years), and the contact counts reports read.
- ``case_notes`` — an agent's note in a closed case's history (the console's record of the
  case, beside the audit's copy of the note) older than ``message_text_days`` loses its words
  the same way; who wrote it and when stay. An open case is being worked on: its notes wait
  for its close.
- ``audit`` — an audit entry older than ``audit_days`` (at least 730; default 1095, the US
  rule of 3 years after the last activity) is deleted whole.
- ``outbound_text`` — an outbound record that is settled (sent, delivered, blocked, failed,
  superseded, unknown …) and last changed before ``outbound_text_days`` keeps its state,
  times, carrier, template and codes; its rendered text and template values (name, amount)
  are emptied. Records still on their way (queued, deferred, reserved, sending) are needed to
  send and are never touched.
- ``unmatched``, ``unmatched_handled`` — replies from numbers no account has, and the record
  of what agents did with them, deleted after ``unmatched_days``.
- ``unmatched_receipts`` — receipts no message matched (they carry a phone number), deleted
  after ``unmatched_receipts_days``; one that carries no time is kept for a person.
- ``sandbox`` — the sandbox carrier's "sent" messages, deleted after ``sandbox_days``.

Kept, whatever the policy says, because the service needs them to work lawfully: the
suppression list (opt-outs, wrong numbers) and unreachable numbers — a deleted opt-out would
let the bot text a borrower who said stop; the per-phone send ledger the frequency caps count
(it holds hashes, not texts, and Redis already keeps only 8 days of it); account records and
conversations (the service's working state: the lender's own system of record decides when an
account ends — deleting accounts is not built); queued events, the outbox and deferred
messages; open cases; due timers. De-duplication claims and receipt indexes expire by
themselves (30 days). Campaigns keep only account ids: a member's personal columns are the
account record.

A run is safe beside the running service (see :mod:`bot.storage.redis_retention`): each step
is an atomic compare-and-set; what changed meanwhile is left for the next run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from bot.desk.case import CaseEntry
from bot.outbound.record import SETTLED, OutboundRecord
from bot.records import AuditEntry
from bot.retention.policy import Cutoffs, RetentionPolicy
from bot.storage.base import KeptKind, RetentionAction, Store

# Detail fields that hold words a person wrote (the borrower, the bot's templates with the
# borrower's name and amount, an agent): what "redacting the text" removes.
PERSONAL_FIELDS = ("text", "note")
REDACTED = "redacted"
# A step's event label quotes the reply (dialogs.conversation.event_label): it becomes the
# label the engine gives a reply without words.
_QUOTED_REPLY = "borrower: "
_REPLY = "borrower replied"

Kind = Literal[
    "audit_text",
    "case_notes",
    "audit",
    "outbound_text",
    "unmatched",
    "unmatched_handled",
    "unmatched_receipts",
    "sandbox",
]
KINDS: tuple[Kind, ...] = get_args(Kind)
_KEPT: tuple[KeptKind, ...] = ("unmatched", "unmatched_handled", "unmatched_receipts", "sandbox")


class Item(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    action: RetentionAction
    where: str  # the account id, or the collection
    id: str  # names the item; never personal text


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    now: datetime
    dry_run: bool
    accounts: int
    counts: dict[Kind, int]
    items: list[Item] = Field(default_factory=list)


def redact_audit(entry: AuditEntry, cut: Cutoffs) -> AuditEntry | None:
    """The entry as retention leaves it: itself, without its words, or None (deleted)."""
    if entry.at < cut.audit:
        return None
    if entry.at >= cut.message_text:
        return entry
    if any(f in entry.detail for f in PERSONAL_FIELDS):
        detail = {k: v for k, v in entry.detail.items() if k not in PERSONAL_FIELDS}
        return entry.model_copy(update={"detail": detail | {REDACTED: True}})
    label = entry.detail.get("event")
    if entry.kind == "step" and isinstance(label, str) and label.startswith(_QUOTED_REPLY):
        detail = entry.detail | {"event": _REPLY, REDACTED: True}
        return entry.model_copy(update={"detail": detail})
    return entry


def redact_note(note: CaseEntry, cut: Cutoffs) -> CaseEntry | None:
    """A closed case's note past the text retention, without its words; None: unchanged."""
    if note.at >= cut.message_text or not any(f in note.detail for f in PERSONAL_FIELDS):
        return None
    detail = {k: v for k, v in note.detail.items() if k not in PERSONAL_FIELDS}
    return note.model_copy(update={"detail": detail | {REDACTED: True}})


def redact_record(record: OutboundRecord, cut: Cutoffs) -> OutboundRecord | None:
    """The settled record without its text and template values; None: left as it is."""
    msg = record.message
    if record.state not in SETTLED or record.updated_at >= cut.outbound_text:
        return None
    if not msg.text and not msg.params:
        return None  # redacted already
    return record.model_copy(update={"message": msg.model_copy(update={"text": "", "params": {}})})


async def sweep(
    store: Store, policy: RetentionPolicy, now: datetime, *, apply: bool, batch: int = 200
) -> Report:
    """Finds (``apply=False``) or removes what the policy says is past its time."""
    cut = policy.cutoffs(now)
    items: list[Item] = []
    account_ids = await store.account_ids()
    # Bounded batches of accounts, one at a time: a run never floods the store the service
    # is using (each account is a few round trips).
    for start in range(0, len(account_ids), batch):
        for account_id in account_ids[start : start + batch]:
            for name, action in await store.edit_audit(
                account_id, lambda e: redact_audit(e, cut), apply=apply
            ):
                kind: Kind = "audit" if action == "delete" else "audit_text"
                items.append(Item(kind=kind, action=action, where=account_id, id=name))
            for mid in await store.edit_outbound(
                account_id, lambda r: redact_record(r, cut), apply=apply
            ):
                items.append(Item(kind="outbound_text", action="redact", where=account_id, id=mid))
            for note in await store.edit_case_notes(
                account_id, lambda n: redact_note(n, cut), apply=apply
            ):
                items.append(Item(kind="case_notes", action="redact", where=account_id, id=note))
    before: dict[KeptKind, datetime] = {
        "unmatched": cut.unmatched,
        "unmatched_handled": cut.unmatched,
        "unmatched_receipts": cut.unmatched_receipts,
        "sandbox": cut.sandbox,
    }
    for kept in _KEPT:
        for name in await store.sweep_kept(kept, before[kept], apply=apply):
            items.append(Item(kind=kept, action="delete", where=kept, id=name))
    counts: dict[Kind, int] = {k: 0 for k in KINDS}
    for item in items:
        counts[item.kind] += 1
    return Report(now=now, dry_run=not apply, accounts=len(account_ids), counts=counts, items=items)

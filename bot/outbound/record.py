"""The outbound record and its state machine.

Every outbound SMS is a stored record from the moment the dialog step commits it::

    queued ──gate──► deferred ──(at T, gate again)──► …   or superseded (the conversation
       │      ├────► blocked                                 moved on meanwhile)
       │      └────► reserved ──claim──► sending ──► sent ──► delivered | undelivered | failed
       │                                  │ │ └──► failed    (permanent; ledger released)
       │                                  │ └────► unknown   (could not be reconciled; flagged)
       │                                  └─ not left (retry, never received, our set-up
       │                                     refused) ──► deferred: gated again when due

``queued`` lives in the account's outbox (written by the commit that made it); every later
state lives in the account's record table. ``deferred``/``reserved``/``blocked`` are the three
verdicts of the compliance gate (the issue calls them ``gated``). ``reserved`` means the send
is charged to the frequency ledger, *before* any provider call, so a crash can never undercount
the caps; the charge is released when the message did not leave (a permanent refusal, or
back to the gate: it is charged again if reserved again). With a carrier slot free, the gate
step stores ``reserved`` and the claim as one step (``sending`` at once).

``sending`` carries a lease (owner token and expiry). A record found in ``sending`` after its
lease expired — its sender crashed, or its attempt was ambiguous (a timeout after the request
left) — is never resent blindly: the sender asks the provider first (``Carrier.lookup``).

Each transition is one atomic store step (a version compare-and-set) with its audit entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from bot.compliance.gate import text_hash  # the gate owns the hash its caps compare
from bot.records import Outbound, SendRecord

OutState = Literal[
    "queued",
    "deferred",
    "reserved",
    "blocked",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "superseded",
    "unknown",
]

# Nothing more will happen to these (a receipt may still resolve ``unknown``).
TERMINAL: frozenset[OutState] = frozenset(
    {"blocked", "delivered", "undelivered", "failed", "superseded", "unknown"}
)
# Settled for the sender: it has nothing left to do (``sent`` waits for a receipt only).
SETTLED: frozenset[OutState] = TERMINAL | {"sent"}
# Where a receipt may move a record, and from where: never backwards from a terminal state
# (callbacks arrive late and out of order), except that a receipt resolves ``unknown``.
RECEIPT_FROM: frozenset[OutState] = frozenset({"sending", "sent", "unknown"})


class OutboundRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    message: Outbound
    state: OutState
    version: int = 0  # bumped by every stored transition (the compare-and-set token)
    updated_at: AwareDatetime
    carrier: str | None = None  # chosen when the send is reserved
    reserved_at: AwareDatetime | None = None  # the ledger entry's time (see ledger_entry)
    attempts: int = 0  # provider calls made (or possibly made)
    first_attempt_at: AwareDatetime | None = None  # the retry budget counts from here
    next_at: AwareDatetime | None = None  # when the sender looks again (retry, lease end)
    lease: str | None = None  # sending: the claiming sender's token
    ambiguous: bool = False  # sending: an attempt may have reached the provider
    provider_id: str | None = None
    code: str | None = None  # the provider's code of the last failure or receipt
    detail: str | None = None
    sent_at: AwareDatetime | None = None
    final_at: AwareDatetime | None = None  # when it reached a terminal state

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def account_id(self) -> str:
        return self.message.account_id

    def moved(self, state: OutState, at: datetime, **changes: object) -> OutboundRecord:
        """The next version of this record in ``state``."""
        update: dict[str, object] = {
            "state": state,
            "version": self.version + 1,
            "updated_at": at,
            **changes,
        }
        if state in TERMINAL and self.final_at is None:
            update["final_at"] = at
        return self.model_copy(update=update)

    def ledger_entry(self) -> SendRecord:
        """The frequency-ledger entry of a reserved send: rebuilt identically from the record
        (same time, same fields), so that releasing it removes exactly what was charged."""
        assert self.reserved_at is not None
        m = self.message
        return SendRecord(
            at=self.reserved_at,
            account_id=m.account_id,
            message_id=m.id,
            kind=m.kind,
            text_hash=text_hash(m.text),
        )


def queued(message: Outbound) -> OutboundRecord:
    """A message as the commit stores it, before the gate has seen it."""
    return OutboundRecord(message=message, state="queued", updated_at=message.created_at)

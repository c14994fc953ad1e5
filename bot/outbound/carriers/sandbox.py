"""The sandbox carrier: records every message in the store (``GET /api/sandbox/messages``, the
simulator page); nothing leaves the machine.

Its "send" is a write to the store, so the gate step stores the message as reserved, sent and
recorded in one atomic step (``Carrier.stored_send``): no call to guard with a claim, nothing
for a crash to leave half done. When a shared rate must be asked first it goes the senders'
way like any carrier; it then answers lookups from its record, so a crash between the claim
and the stored outcome is reconciled like a real carrier's."""

from __future__ import annotations

from datetime import datetime

from bot.outbound.carriers.base import Carrier, CarrierMessage, LookupResult, SendOutcome
from bot.records import Outbound
from bot.storage.base import Store

# A lookup scans the newest sandbox messages; the store keeps at most this many.
_LOOKUP_WINDOW = 10_000


class SandboxCarrier(Carrier):
    name = "sandbox"

    def __init__(self, store: Store) -> None:
        self._store = store

    async def send(self, message: CarrierMessage) -> SendOutcome:
        # Only the whole stored message is worth recording (the simulator shows it).
        raise TypeError("the sandbox records whole messages: call send_outbound")

    def stored_send(self, message: Outbound) -> SendOutcome:
        return _accepted(message)

    async def send_outbound(self, message: Outbound) -> SendOutcome:
        # Accepted: the sender stores the message in the sandbox's record together with the
        # outcome (Transition.sandbox), one store call instead of two. A crash before that
        # leaves nothing recorded, and the reconciliation finds it absent: sent again.
        return _accepted(message)

    async def lookup(self, message: CarrierMessage, sent_after: datetime) -> LookupResult:
        recorded = await self._store.list_sandbox(_LOOKUP_WINDOW)
        if any(m.id == message.id for m in recorded):
            return LookupResult(status="found", provider_id=provider_id(message.id), state="sent")
        return LookupResult(status="absent")


def _accepted(message: Outbound) -> SendOutcome:
    return SendOutcome(status="sent", provider_id=provider_id(message.id))


def provider_id(message_id: str) -> str:
    return f"sandbox:{message_id}"

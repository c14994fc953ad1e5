"""The sandbox carrier: records every message in the store (``GET /api/sandbox/messages``, the
simulator page); nothing leaves the machine. It answers lookups from the same record, so a
crash between its "send" and the stored outcome is reconciled like a real carrier's."""

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

    async def send_outbound(self, message: Outbound) -> SendOutcome:
        # Accepted: the sender stores the message in the sandbox's record together with the
        # outcome (Transition.sandbox), one store call instead of two. A crash before that
        # leaves nothing recorded, and the reconciliation finds it absent: sent again.
        return SendOutcome(status="sent", provider_id=provider_id(message.id))

    async def lookup(self, message: CarrierMessage, sent_after: datetime) -> LookupResult:
        recorded = await self._store.list_sandbox(_LOOKUP_WINDOW)
        if any(m.id == message.id for m in recorded):
            return LookupResult(status="found", provider_id=provider_id(message.id), state="sent")
        return LookupResult(status="absent")


def provider_id(message_id: str) -> str:
    return f"sandbox:{message_id}"

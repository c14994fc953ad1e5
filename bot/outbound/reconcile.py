"""Reconciliation: a ``sending`` record whose sender died, or whose attempt was ambiguous, is
never resent blindly — the carrier is asked first (``Carrier.lookup``; mixed into
``bot.outbound.sender``). Found: ``sent`` (and its final state, if the carrier knows it);
absent: back to the gate; not yet decidable: asked again later; still undecided at the give-up
time: ``unknown``, kept against the caps, and the conversation handed to a person.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.outbound import receipts
from bot.outbound.carriers.base import Carrier, Receipt, SendOutcome, carrier_message
from bot.outbound.record import OutboundRecord
from bot.outbound.settle import Settling
from bot.records import QueuedEvent, audit_entry
from bot.storage.base import Transition

log = logging.getLogger("bot.outbound.sender")

# A lookup asks from a little before the reservation: clocks differ between us and them. Kept
# small: a carrier calls a message "absent" only once its window is old enough to be settled.
_LOOKUP_SLACK = timedelta(seconds=60)


class Reconciling(Settling):
    """Provided by :class:`bot.outbound.sender.Sender`."""

    _token: str

    async def _reconcile(self, record: OutboundRecord, carrier: Carrier) -> OutboundRecord | None:
        """A ``sending`` record whose sender died or whose attempt was ambiguous."""
        now = self.clock.now()
        claimed = record.moved(
            "sending", now, lease=self._token, next_at=now + timedelta(seconds=self.policy.lease_s)
        )
        audit = [audit_entry(now, "reconcile", message_id=record.id, carrier=carrier.name)]
        if not await self.store.move(
            Transition(claimed, record.version, audit, due=claimed.next_at)
        ):
            return None
        since = (record.reserved_at or record.message.created_at) - _LOOKUP_SLACK
        try:
            found = await carrier.lookup(carrier_message(record.message), since)
        except Exception:  # an adapter bug: cannot tell
            log.exception("carrier %s lookup raised for message %s", carrier.name, record.id)
            found = None
        now = self.clock.now()
        if found is not None and found.status == "found":
            await self._settle(
                claimed, SendOutcome(status="sent", provider_id=found.provider_id, code=found.code)
            )
            if found.state in ("delivered", "undelivered", "failed"):
                # The carrier already knows how it ended: as its receipt would say.
                report = Receipt(
                    carrier=carrier.name,
                    message_id=record.id,
                    provider_id=found.provider_id,
                    state=found.state,
                    code=found.code,
                    detail=found.detail,
                )
                await receipts.apply(self.store, self.clock, report, self._on_event)
            return None
        if found is not None and found.status == "absent":
            # The provider's record is authoritative: it never had the message. It goes
            # again, but only as the gate decides now (not as it decided before the crash).
            audit = [audit_entry(now, "absent", message_id=record.id, carrier=carrier.name)]
            log.info("message %s: the carrier never had it; back to the gate", record.id)
            await self._regate(claimed, claimed.version, now, now, audit)
            return None
        why = (found.code or found.detail) if found is not None else "lookup failed"
        started = record.reserved_at or record.message.created_at
        if now - started < timedelta(seconds=self.policy.reconcile_give_up_s):
            # Not yet decidable (too recent for the provider's records, a failed query): ask
            # again later; meanwhile nothing is resent.
            at = now + timedelta(seconds=self.policy.reconcile_after_s)
            later = claimed.moved("sending", now, lease=None, next_at=at, ambiguous=True)
            audit = [
                audit_entry(
                    now, "reconcile_later", message_id=record.id, carrier=carrier.name, code=why
                )
            ]
            await self.store.move(Transition(later, claimed.version, audit, due=at))
            return None
        # Cannot tell: never resent (it may have arrived), counted against the caps (the
        # ledger charge stays), and the conversation goes to a person.
        unknown = claimed.moved("unknown", now, lease=None, next_at=None, code=why)
        reason = "unknown: the provider cannot say whether the message was sent"
        event = QueuedEvent(kind="delivery_failed", at=now, reason=reason)
        audit = [audit_entry(now, "unknown", message_id=record.id, carrier=carrier.name, code=why)]
        if await self.store.move(
            Transition(unknown, claimed.version, audit, undue=True, event=event)
        ):
            log.warning("message %s: outcome unknown; handed to a person", record.id)
            self._on_event(record.account_id)
        return None

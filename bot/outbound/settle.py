"""What an attempt's outcome does to an outbound record (mixed into ``bot.outbound.sender``).

``sent`` (the provider id indexed for receipts), ``failed`` (the ledger charge released,
``delivery_failed`` queued for the conversation, the number opted out or marked unreachable
when the provider's code says so), back to the gate step as ``deferred`` when nothing left
(a retryable failure after a backoff, our own set-up refused: every resend is judged again),
or ``sending`` marked ambiguous (the provider may have the message). A carrier that refuses
our set-up is reported unhealthy (readiness) until it accepts a message again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.clock import Clock
from bot.outbound.carriers.base import SendOutcome
from bot.outbound.record import OutboundRecord
from bot.privacy import mask_phone
from bot.records import AuditEntry, QueuedEvent, audit_entry
from bot.storage.base import Store, Transition

if TYPE_CHECKING:
    from bot.outbound.sender import SendPolicy

log = logging.getLogger("bot.outbound.sender")


class Settling:
    """Provided by :class:`bot.outbound.sender.Sender`."""

    store: Store
    clock: Clock
    policy: SendPolicy
    health: dict[str, str | None]
    _rng: random.Random
    _on_event: Callable[[str], None]

    async def _settle(self, claimed: OutboundRecord, outcome: SendOutcome) -> None:
        now = self.clock.now()
        p = self.policy
        base = {"message_id": claimed.id, "carrier": claimed.carrier, "code": outcome.code}
        detail = outcome.detail
        event: QueuedEvent | None = None
        carrier = claimed.carrier or ""
        if outcome.config_error:
            self._broken(carrier, outcome)
            # Our set-up, not the message: kept, and tried again (through the gate) once the
            # carrier may have been fixed; the attempt does not count.
            at = now + timedelta(seconds=p.config_hold_s)
            audit = [audit_entry(now, "held", **base, detail=detail, retry_at=at.isoformat())]
            kept = claimed.model_copy(update={"attempts": claimed.attempts - 1})
            await self._regate(kept, claimed.version, now, at, audit, outcome)
            return
        self._healthy(carrier)
        if outcome.status == "retry":
            first = claimed.first_attempt_at or now
            if claimed.attempts >= p.max_attempts or now - first >= timedelta(
                seconds=p.retry_for_s
            ):
                detail = (
                    f"gave up after {claimed.attempts} attempts over "
                    f"{int((now - first).total_seconds())} s: {outcome.detail or outcome.code}"
                )
                outcome = outcome.model_copy(update={"status": "failed", "detail": detail})
        match outcome.status:
            case "sent":
                new = claimed.moved(
                    "sent",
                    now,
                    provider_id=outcome.provider_id,
                    sent_at=now,
                    lease=None,
                    next_at=None,
                    ambiguous=False,
                )
                # Receipts come from real carriers only: the sandbox's ids need no index.
                pid = outcome.provider_id
                index = (carrier, pid) if pid is not None and carrier != "sandbox" else None
                audit = [audit_entry(now, "sent", **base, provider_id=outcome.provider_id)]
                sandbox = claimed.message if carrier == "sandbox" else None
                t = Transition(
                    new,
                    claimed.version,
                    audit,
                    undue=True,
                    provider_index=index,
                    sandbox=sandbox,
                )
            case "retry":
                # Nothing left: it goes back through the gate when due (the hour, an opt-out,
                # a payment meanwhile are judged again).
                delay = outcome.retry_after_s or self._backoff(claimed.attempts)
                at = now + timedelta(seconds=delay)
                audit = [audit_entry(now, "retry", **base, detail=detail, retry_at=at.isoformat())]
                await self._regate(claimed, claimed.version, now, at, audit, outcome)
                return
            case "ambiguous":
                at = now + timedelta(seconds=p.reconcile_after_s)
                new = claimed.moved(
                    "sending",
                    now,
                    next_at=at,
                    lease=None,
                    ambiguous=True,
                    code=outcome.code,
                    detail=detail,
                )
                audit = [audit_entry(now, "ambiguous", **base, detail=detail)]
                t = Transition(new, claimed.version, audit, due=at)
            case _:  # failed for good: the charge is released, the flow hears of it
                new = claimed.moved(
                    "failed", now, lease=None, next_at=None, code=outcome.code, detail=detail
                )
                event = QueuedEvent(
                    kind="delivery_failed", at=now, reason=f"{outcome.code}: {detail}"
                )
                audit = [
                    audit_entry(
                        now,
                        "failed",
                        **base,
                        detail=detail,
                        opted_out=outcome.opted_out or None,
                        invalid_number=outcome.invalid_number or None,
                    )
                ]
                t = Transition(
                    new,
                    claimed.version,
                    audit,
                    undue=True,
                    release=claimed.ledger_entry() if claimed.reserved_at else None,
                    event=event,
                    opt_out=outcome.opted_out,
                    invalid_number=outcome.invalid_number,
                )
        if not await self.store.move(t):
            # Only a sender that outlived its lease gets here; the lease's next holder
            # reconciles with the provider, so nothing is sent twice.
            log.warning("message %s: lease lost before its outcome was stored", claimed.id)
            return
        if outcome.status == "failed":
            log.info(
                "message %s to %s failed: %s",
                claimed.id,
                mask_phone(claimed.message.phone),
                outcome.code,
            )
        if event is not None:
            self._on_event(claimed.account_id)

    async def _regate(
        self,
        record: OutboundRecord,
        expected: int,
        now: datetime,
        at: datetime,
        audit: list[AuditEntry],
        outcome: SendOutcome | None = None,
    ) -> bool:
        """A message that has not left goes back to the gate step, due at ``at``: deferred
        until then, its ledger charge released (the gate charges it again when it reserves
        it). A resend is a new decision: the conversation may have moved on (superseded), the
        borrower may have opted out, the hour may be past the contact window."""
        held = record.message.model_copy(update={"not_before": at})
        new = record.model_copy(update={"message": held}).moved(
            "deferred",
            now,
            lease=None,
            next_at=at,
            ambiguous=False,
            code=outcome.code if outcome else record.code,
            detail=outcome.detail if outcome else record.detail,
        )
        release = record.ledger_entry() if record.reserved_at else None
        # The account's due index first (early, never late): its drain re-gates the message.
        await self.store.lower_due(record.account_id, at)
        t = Transition(new, expected, audit, defer=True, release=release, undue=True)
        if not await self.store.move(t):
            log.warning("message %s: lease lost before its outcome was stored", record.id)
            return False
        # Again after: a drain that read the deferred list before the message was there may
        # have raised the index meanwhile (bot.storage.base.hidden_deferred).
        await self.store.lower_due(record.account_id, at)
        if at <= now:
            self._on_event(record.account_id)
        return True

    def _broken(self, carrier: str, outcome: SendOutcome) -> None:
        if self.health.get(carrier) is None:
            log.error(
                "carrier %s refuses our set-up (%s: %s): messages are kept and retried every "
                "%.0f s until it is fixed",
                carrier,
                outcome.code,
                outcome.detail,
                self.policy.config_hold_s,
            )
        self.health[carrier] = f"{outcome.code}: {outcome.detail}"

    def _healthy(self, carrier: str) -> None:
        if self.health.get(carrier) is not None:
            log.warning("carrier %s accepts our set-up again", carrier)
            self.health[carrier] = None

    def _backoff(self, attempts: int) -> float:
        """Exponential with equal jitter: never two retries in lock-step across messages."""
        p = self.policy
        ceiling = min(p.backoff_cap_s, p.backoff_base_s * 2.0 ** max(0, attempts - 1))
        return float(ceiling / 2 + self._rng.random() * ceiling / 2)

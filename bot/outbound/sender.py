"""Senders: reserved records go to their carrier here, off every account's lock.

A provider call takes 100 ms to seconds; it never holds an account's lock nor a drain slot,
so other borrowers' replies are never delayed by a slow carrier. Each process runs one
``Sender``: the gate step hands it what it reserved (no polling delay), and a poll of the
store's senders' index picks up whatever is due anywhere — retries, records another process
reserved and never claimed, leases of crashed senders, ambiguous attempts to reconcile.

Exactly once, per record (bot.outbound.record):

1. a carrier slot and a token of the carrier's rate (a bucket shared by all processes), then
   the *claim*: ``reserved → sending`` with this sender's lease (compare-and-set on the
   version: of two processes, one wins), counted as an attempt — or the gate step's one-step
   reserve-and-claim when a slot was free (:meth:`Sender.take_slot`);
2. the provider call;
3. *settle*: ``sent`` (provider id indexed for receipts), ``failed`` (ledger charge released,
   ``delivery_failed`` queued for the conversation, the number opted out or marked
   unreachable when the provider's code says so), back to the gate step as ``deferred`` when
   nothing left (a retryable failure after a backoff, our own set-up refused: every resend is
   judged again), or ``sending`` marked ambiguous (the provider may have the message).

A record found in ``sending`` whose lease has ended is never resent blindly: the carrier is
asked (``Carrier.lookup``) — found: ``sent``; absent: back to the gate; not yet decidable:
asked again later; still undecided at the give-up time: ``unknown``, kept against the caps,
and the conversation handed to a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock
from bot.ids import new_id
from bot.outbound import receipts
from bot.outbound.carriers.base import Carrier, Receipt, SendOutcome, carrier_message
from bot.outbound.record import SETTLED, OutboundRecord
from bot.privacy import mask_phone
from bot.records import AuditEntry, QueuedEvent, SendRecord, audit_entry
from bot.storage.base import Store, StoreUnavailable, Transition

log = logging.getLogger(__name__)

# A lookup asks from a little before the reservation: clocks differ between us and them. Kept
# small: a carrier calls a message "absent" only once its window is old enough to be settled.
_LOOKUP_SLACK = timedelta(seconds=60)


@dataclass(frozen=True)
class SendPolicy:
    max_attempts: int = 20  # provider calls per message before it fails for good
    backoff_base_s: float = 2.0  # first retry after about this long, doubling, with jitter
    backoff_cap_s: float = 300.0
    lease_s: float = 30.0  # longer than any carrier's timeout: a live sender never loses it
    reconcile_after_s: float = 30.0  # an ambiguous attempt is looked up after this long
    # ... and again as often while the carrier cannot yet tell; after this long from the
    # reservation it is "unknown" and a person looks.
    reconcile_give_up_s: float = 3600.0
    # Retryable failures (throttling, outages) are retried this long before the message
    # fails and a person is told; our own set-up errors hold the message, retried this often.
    retry_for_s: float = 3600.0
    config_hold_s: float = 60.0
    # A record the gate step handed to this process's sender is left to it this long before
    # other processes' polls may take it (they would only lose the claim race meanwhile).
    handoff_grace_s: float = 5.0
    concurrency: int = 256  # provider calls in flight per carrier in this process
    rates: Mapping[str, float] = field(default_factory=dict)  # carrier -> sends/s (all processes)
    burst: int = 50


class Sender:
    def __init__(
        self,
        store: Store,
        carriers: Mapping[str, Carrier],
        clock: Clock,
        policy: SendPolicy | None = None,
        *,
        on_event: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.carriers = dict(carriers)
        self.clock = clock
        self.policy = policy or SendPolicy()
        self._on_event = on_event or (lambda _account_id: None)
        self._rng = rng or random.Random()
        self._token = new_id()  # this sender's lease token
        self._slots = {name: asyncio.Semaphore(self.policy.concurrency) for name in carriers}
        # Sends waiting in this process at most (four lines of carrier slots): a backlog of
        # reserved records stays in the store, so memory does not grow with it.
        self._max_tasks = 4 * self.policy.concurrency * max(1, len(carriers))
        self._inflight: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        # Per carrier: why it refuses our set-up (credentials, endpoint), or None (readiness).
        self.health: dict[str, str | None] = {}

    # --- entry points -------------------------------------------------------------------

    def submit(self, record: OutboundRecord) -> None:
        """A record the gate step just reserved: claimed and sent at once — unless this
        process already has a long line of sends waiting for carrier slots; then the record
        waits in the store (the senders' index) for the next poll, not in memory."""
        if not self._closing and len(self._tasks) < self._max_tasks:
            self._spawn(self._work(record.account_id, record.id, record))

    async def poll(self, limit: int = 500) -> int:
        """Takes what is due in the senders' index (any process's); how many were started."""
        room = min(limit, self._max_tasks - len(self._tasks))
        if self._closing or room <= 0:
            return 0
        started = 0
        for account_id, message_id in await self.store.due_sends(self.clock.now(), room):
            if (account_id, message_id) not in self._inflight:
                self._spawn(self._work(account_id, message_id, None))
                started += 1
        return started

    async def run(self, interval: float) -> None:
        while not self._closing:
            try:
                await self.poll()
            except StoreUnavailable as exc:
                log.warning("sender poll: store unavailable: %s", exc)
            except Exception:
                log.exception("sender poll failed; retrying")
            await asyncio.sleep(interval)

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 10.0) -> None:
        """No new work; calls in flight finish (for ``grace`` seconds). A call cut off stays
        ``sending`` under its lease and is reconciled by the next sender to find it."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one record ---------------------------------------------------------------------

    async def _work(self, account_id: str, message_id: str, known: OutboundRecord | None) -> None:
        async def steps() -> None:
            record = known or await self.store.outbound(account_id, message_id)
            while record is not None:
                record = await self._step(record)

        await self._guarded((account_id, message_id), steps)

    async def _guarded(self, key: tuple[str, str], work: Callable[[], Awaitable[None]]) -> None:
        """Runs one record's work at most once at a time in this process; a store outage or
        a bug is logged, never raised (the record stays where its last stored step left it)."""
        if key in self._inflight:
            return
        self._inflight.add(key)
        try:
            await work()
        except StoreUnavailable as exc:
            log.warning("sender: store unavailable (message %s): %s", key[1], exc)
        except Exception:
            log.exception("sender: message %s of account %s failed", key[1], key[0])
        finally:
            self._inflight.discard(key)

    async def _step(self, record: OutboundRecord) -> OutboundRecord | None:
        """One move of the record; the record to go on with, or None when done here."""
        now = self.clock.now()
        if record.state in SETTLED or record.state in ("queued", "deferred"):
            # An index entry left by a crash: nothing to do.
            await self.store.forget_send(record.account_id, record.id)
            return None
        if record.next_at is not None and record.next_at > now:
            return None  # a retry not yet due, or another sender's lease
        carrier = self.carriers.get(record.carrier or "")
        if carrier is None:
            detail = f"carrier {record.carrier!r} is not configured in this service"
            await self._settle(record, SendOutcome(status="failed", code="carrier", detail=detail))
            return None
        if record.state == "sending":
            return await self._reconcile(record, carrier)
        # The slot and the rate are taken *before* the claim: a claimed record is called at
        # once, so its lease never runs out while it waits in line (another process would
        # then reconcile a message this one is about to send).
        async with self._slots[carrier.name]:
            await self._rate(carrier.name)
            now = self.clock.now()
            claimed = self.claim(record, now)
            audit = [audit_entry(now, "sending", message_id=record.id, attempt=claimed.attempts)]
            # The senders' index keeps the time the reservation gave it (a few seconds on):
            # a call that outlives it is skipped by this process's polls (in flight here) and
            # read, found leased and left alone by others'. Not moving it saves two commands
            # per send (bench/inbound.py); a crash is found there all the same.
            if not await self.store.move(Transition(claimed, record.version, audit)):
                return None  # another sender claimed it
            outcome = await self._call(carrier, record)
        await self._settle(claimed, outcome)
        return None

    async def _call(self, carrier: Carrier, record: OutboundRecord) -> SendOutcome:
        try:
            return await carrier.send_outbound(record.message)
        except Exception as exc:  # an adapter bug: the request may have left
            log.exception("carrier %s raised for message %s", carrier.name, record.id)
            return SendOutcome(status="ambiguous", code="error", detail=repr(exc))

    # --- the gate step's fast path: reserve and claim in one store step -------------------

    async def take_slot(self, carrier: str) -> bool:
        """A slot of ``carrier`` for a call right now, or False (no free slot, a rate to ask
        the store about, a line already waiting, shutting down): then the record goes the
        usual way (reserved, claimed by a sender task)."""
        slot = self._slots.get(carrier)
        if (
            slot is None
            or slot.locked()
            or self.policy.rates.get(carrier)
            or self._closing
            or len(self._tasks) >= self._max_tasks
        ):
            return False
        await slot.acquire()  # free: returns at once, nothing else runs in between
        return True

    def give_slot(self, carrier: str) -> None:
        self._slots[carrier].release()

    def claim(self, record: OutboundRecord, now: datetime) -> OutboundRecord:
        """``record`` claimed by this sender: ``sending`` under its lease, one more attempt."""
        return record.moved(
            "sending",
            now,
            lease=self._token,
            attempts=record.attempts + 1,
            first_attempt_at=record.first_attempt_at or now,
            next_at=now + timedelta(seconds=self.policy.lease_s),
            ambiguous=False,
        )

    def sent_in_step(
        self,
        reserved: OutboundRecord,
        now: datetime,
        audit: list[AuditEntry],
        charge: SendRecord,
        first_contact: bool,
    ) -> Transition | None:
        """For a carrier whose send is a write to our store (the sandbox): the transition that
        takes ``reserved`` (its gate ``audit``, its ledger ``charge``) out of the outbox as
        sent and recorded by the carrier, in one store step. There is no call to guard with a
        claim, and a crash cannot split it. None when a call must be made, or the carrier's
        shared rate must be asked first (then the senders' way, as any carrier)."""
        carrier = self.carriers.get(reserved.carrier or "")
        outcome = carrier.stored_send(reserved.message) if carrier is not None else None
        if outcome is None or self.policy.rates.get(reserved.carrier or "") or self._closing:
            return None
        pid = outcome.provider_id
        # One stored step: the reservation's version, one attempt made.
        record = reserved.model_copy(
            update={"state": "sent", "attempts": 1, "first_attempt_at": now, "provider_id": pid,
                    "sent_at": now}
        )  # fmt: skip
        entry = audit_entry(
            now, "sent", message_id=record.id, carrier=record.carrier, provider_id=pid
        )
        return Transition(
            record,
            None,  # from the outbox; never in the senders' index
            [*audit, entry],
            charge=charge,
            first_contact=first_contact,
            sandbox=record.message,
        )

    def call(self, claimed: OutboundRecord) -> None:
        """Calls the carrier for a record claimed with a slot from :meth:`take_slot`."""
        self._spawn(self._call_claimed(claimed))

    async def _call_claimed(self, claimed: OutboundRecord) -> None:
        carrier = self.carriers[claimed.carrier or ""]

        async def call_and_settle() -> None:
            try:
                outcome = await self._call(carrier, claimed)
            finally:
                self.give_slot(carrier.name)
            await self._settle(claimed, outcome)

        await self._guarded((claimed.account_id, claimed.id), call_and_settle)

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

    async def _rate(self, carrier: str) -> None:
        rate = self.policy.rates.get(carrier)
        if not rate:
            return
        while True:
            wait = await self.store.take_tokens(
                f"carrier:{carrier}", rate, self.policy.burst, self.clock.now()
            )
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, 1.0))

    def _backoff(self, attempts: int) -> float:
        """Exponential with equal jitter: never two retries in lock-step across messages."""
        p = self.policy
        ceiling = min(p.backoff_cap_s, p.backoff_base_s * 2.0 ** max(0, attempts - 1))
        return float(ceiling / 2 + self._rng.random() * ceiling / 2)

    def handoff_at(self, now: datetime) -> datetime:
        """When other processes may take a record just handed to this sender."""
        return now + timedelta(seconds=self.policy.handoff_grace_s)

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
3. *settle* (``bot.outbound.settle``): ``sent``, ``failed``, back to the gate step as
   ``deferred`` when nothing left (every resend is judged again), or ``sending`` marked
   ambiguous (the provider may have the message).

A record found in ``sending`` whose lease has ended is never resent blindly: the carrier is
asked first (``bot.outbound.reconcile``).
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

from structlog.contextvars import bind_contextvars

from bot.clock import Clock
from bot.ids import new_id
from bot.outbound.carriers.base import Carrier, SendOutcome
from bot.outbound.reconcile import Reconciling
from bot.outbound.record import SETTLED, OutboundRecord
from bot.records import AuditEntry, SendRecord, audit_entry
from bot.storage.base import Store, StoreUnavailable, Transition

log = logging.getLogger(__name__)


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


class Sender(Reconciling):
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
                # Said once per outage by the Redis client (bot.storage.resp_errors).
                log.debug("sender poll: store unavailable: %s", exc)
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
        # Its own task (_spawn): the log lines of this send name the account and message, and
        # keep the request id of the reply whose drain reserved it (the task copied that context).
        bind_contextvars(account=key[0], message_id=key[1])
        self._inflight.add(key)
        try:
            await work()
        except StoreUnavailable as exc:
            # Said once per outage by the Redis client; the record stays for the next poll.
            log.debug("sender: store unavailable (message %s): %s", key[1], exc)
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

    def handoff_at(self, now: datetime) -> datetime:
        """When other processes may take a record just handed to this sender."""
        return now + timedelta(seconds=self.policy.handoff_grace_s)

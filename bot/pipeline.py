"""The inbound side: one account's events, in arrival order, exactly once.

Webhooks and the API only *enqueue* (durably, de-duplicated) and then ``kick`` the account.
Whoever holds the account's lock drains its queue; the lock is taken before the conversation
is read, and each event's consequences (``bot.interpret``: understand → step) are committed
atomically with its removal from the queue (see ``bot.storage.base``). Still under the lock,
the committed messages pass the gate step (``bot.outbound.dispatch``); sending is the send
side's (``bot.outbound.sender``), off the lock. Background loops fire due timers and recover
queues left behind by a crash (``bot.loops``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from structlog.contextvars import bind_contextvars

from bot.clock import Clock
from bot.compliance.gate import Gate
from bot.desk.config import DeskSettings
from bot.desk.opening import event_case, feed_events
from bot.desk.sla import expire_cases
from bot.heartbeat import Heartbeats
from bot.interpret import Interpreter
from bot.memo import Memo
from bot.outbound.dispatch import Dispatcher
from bot.privacy import mask_phone
from bot.records import AccountRecord, AuditEntry, Outbound, QueuedEvent, audit_entry
from bot.storage.base import AccountLock, Loaded, Progress, Store, StoreUnavailable
from bot.storage.desk_events import DeskEvent
from bot.telemetry import metrics
from bot.transport.inbound import InboundSms
from dialogs import conversation as c
from dialogs.registry import Registry
from intents import Understander

log = logging.getLogger(__name__)

Received = Literal["accepted", "duplicate", "unmatched"]
_COMMITTED_MEMO = 4096
# A watched account is looked at again this long after its lock's TTL has run out, so the lock
# has surely expired (Redis expires a key at its time to the millisecond, our timer may be late
# or early by a scheduler tick).
_WATCH_MARGIN_S = 0.05

# How a dead process's account lock is got over (issue 16, item 16):
#
# - The lock's TTL is short (SMSBOT_LOCK_TTL_MS, 5 s) and a drain keeps it alive: each commit
#   extends it, and a heartbeat refreshes it every third of the TTL while one step takes long
#   (a slow store, a big flush). A live holder never loses it; a dead one's runs out in at
#   most one TTL. A lock lost anyway (a stall longer than the TTL) is safe: commits check the
#   head event, and the drain stops when its commit says the lock is gone.
# - Whoever finds an account's lock taken while it has an event waiting (a reply that came in
#   meanwhile, a kick) *watches* the account: one timer per account and process, firing just
#   after the TTL, drains it then. A live holder has drained it by that time (the watch finds
#   nothing: one script); a dead one's lock has expired and the watcher takes over. So a reply
#   waits at most one TTL behind a crashed process, however rarely the recovery scan runs.
# - The recovery scan (SMSBOT_RECOVERY_INTERVAL_S) finds queues nobody watches: the event a
#   process died processing when no later reply came. It SCANs the whole keyspace, which is
#   why it stays periodic rather than frequent.


class Pipeline:
    def __init__(
        self,
        store: Store,
        nlu: Understander,
        registry: Registry,
        dispatcher: Dispatcher,
        clock: Clock,
        gate: Gate,
        *,
        lock_ttl_ms: int = 5_000,
        paused: bool = False,
        max_drains: int = 32,
        desk: DeskSettings | None = None,
    ) -> None:
        self.store = store
        self.nlu = nlu
        self.registry = registry
        self.dispatcher = dispatcher
        self.clock = clock
        self.gate = gate
        self.lock_ttl_ms = lock_ttl_ms
        self._tasks: set[asyncio.Task[None]] = set()
        # At most this many accounts drain at once in this process. A burst (or a recovery
        # after a restart) used to start one drain per account at once: thousands of tasks
        # contending for the Redis connections cost more CPU per message (bench/inbound.py).
        self._drain_slots = asyncio.Semaphore(max_drains)
        self._waiting: set[str] = set()  # accounts whose drain task has not started yet
        self._watched: dict[str, asyncio.TimerHandle] = {}  # accounts locked by someone else
        self._heartbeats = Heartbeats(lock_ttl_ms / 3000, self._spawn)  # held locks kept alive
        self._closing = False
        self.paused = paused  # accept and store only; see Settings.pause_processing
        # The last conversation this process committed per account, with its JSON: when the
        # account's next drain reads back that very text, it skips the parse (bot.memo).
        self._committed: Memo[str, tuple[str, c.Conversation]] = Memo(_COMMITTED_MEMO)
        self.interpreter = Interpreter(store, nlu, registry, gate)
        # The case queue's SLA settings (config/desk.yaml; replaced on reload).
        self.desk = desk or DeskSettings.load()

    @property
    def drains_waiting(self) -> int:
        """Accounts whose drain waits for a slot (/metrics)."""
        return len(self._waiting)

    # --- entry points -------------------------------------------------------------------

    async def receive(self, sms: InboundSms) -> Received:
        """Durably accepts one inbound SMS (call before acknowledging the provider)."""
        account_id = await self.store.find_account(sms.phone)
        if account_id is None:
            added = await self.store.add_unmatched(sms)
            log.info("inbound from unknown number %s kept for agents", mask_phone(sms.phone))
            if added:  # the console's unmatched tab re-reads (no number or text in the event)
                self._spawn(
                    self.store.desk.events.publish(
                        DeskEvent(kind="unmatched", account_id="", at=sms.received_at)
                    )
                )
            return "unmatched" if added else "duplicate"
        event = QueuedEvent(kind="inbound", at=sms.received_at, inbound=sms)
        dedup = f"msg:{sms.provider}:{sms.msg_id}"
        if self._closing or self.paused or self._drain_slots.locked():
            # Queue only: a drain (now or after a restart) takes it when it can. When every
            # drain slot is busy this is also the cheaper way: the account's events pile up
            # and one drain takes them all with one read (measured: taking the lock here too
            # read the state once per message and cost more under saturation).
            if not await self.store.enqueue(account_id, event, dedup=dedup):
                self.kick(account_id)  # see below: the first copy may sit behind a dead lock
                return "duplicate"
            self.kick(account_id)
            return "accepted"
        # The usual case: the queue and the lock in one step, and this process drains at
        # once with what it read. If the lock is someone else's, they find the event.
        lock = self.store.lock(account_id, self.lock_ttl_ms)
        accepted, loaded = await lock.enqueue_and_acquire(event, dedup=dedup)
        if not accepted:
            # A provider's retry: the first copy was queued, perhaps by a process that died
            # before acknowledging it, under a lock that is now a dead one's. Kicked (and so
            # watched if the lock is taken), it is not left to the recovery scan.
            self.kick(account_id)
            return "duplicate"
        if loaded is not None:
            self._spawn(self._drain_when_free(account_id, (lock, loaded)))
        else:
            self._watch(account_id)  # the holder may be a dead process
        return "accepted"

    async def submit(self, account_id: str, event: QueuedEvent, dedup: str | None = None) -> bool:
        """Queues a non-SMS event (campaign start, payment, agent action)."""
        accepted = await self.store.enqueue(account_id, event, dedup=dedup)
        if accepted:
            self.kick(account_id)
        return accepted

    def kick(self, account_id: str) -> None:
        """Makes sure someone drains the account's queue soon."""
        if self._closing or self.paused:
            return  # stays queued: the next start's recovery picks it up
        if account_id in self._waiting:
            return  # a drain that has not looked at the queue yet will see this event too
        self._waiting.add(account_id)
        self._spawn(self._drain_when_free(account_id))

    def _watch(self, account_id: str) -> None:
        """Someone else holds the account's lock while an event waits: look again just after
        the lock's TTL (see the comment at the top: a dead holder's lock has expired by then)."""
        if account_id in self._watched or self._closing or self.paused:
            return
        delay = self.lock_ttl_ms / 1000 + _WATCH_MARGIN_S
        loop = asyncio.get_running_loop()
        self._watched[account_id] = loop.call_later(delay, self._watch_fired, account_id)

    def _watch_fired(self, account_id: str) -> None:
        self._watched.pop(account_id, None)
        self.kick(account_id)

    def _unwatch(self, account_id: str) -> None:
        handle = self._watched.pop(account_id, None)
        if handle is not None:
            handle.cancel()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_when_free(
        self, account_id: str, held: tuple[AccountLock, Loaded] | None = None
    ) -> None:
        started = False
        # Its own task: the log lines of this drain name the account (and carry the request
        # id of the webhook that spawned it: the task copied its context).
        bind_contextvars(account=account_id)
        try:
            async with self._drain_slots:
                started = True
                if held is None:
                    self._waiting.discard(account_id)  # from now, a new event needs a new kick
                await self.drain(account_id, held)
        finally:
            if not started:
                if held is None:
                    self._waiting.discard(account_id)
                else:  # cancelled while waiting for a slot: the lock must not wait for its TTL
                    with contextlib.suppress(StoreUnavailable):
                        await held[0].release_and_check()

    async def drain(self, account_id: str, held: tuple[AccountLock, Loaded] | None = None) -> None:
        """Processes the account's queue if its lock is free (or ``held``: taken and read by
        the caller), until nothing is waiting."""
        try:
            while True:
                if held is not None:
                    (lock, loaded), held = held, None
                else:
                    lock = self.store.lock(account_id, self.lock_ttl_ms)
                    taken = await lock.acquire_and_load()
                    if taken is None:
                        # A live holder looks at the queue again after releasing; a dead
                        # one's lock expires: watched, so the account is not left until then.
                        self._watch(account_id)
                        return
                    loaded = taken
                waiting: bool | None = None  # None: the lock is still ours to release
                beating = self._heartbeats.hold(lock)
                try:
                    waiting = await self._drain_locked(account_id, lock, loaded)
                finally:
                    self._heartbeats.release(beating)
                    if waiting is None:
                        waiting = await lock.release_and_check()
                if not waiting:
                    self._unwatch(account_id)  # drained to empty here: nothing to look for
                    return
        except StoreUnavailable as exc:
            # Said once per outage by the Redis client (bot/storage/resp.py), not per account.
            log.debug("store unavailable while draining account %s: %s", account_id, exc)

    async def _drain_locked(
        self, account_id: str, lock: AccountLock, loaded: Loaded
    ) -> bool | None:
        """Processes the queue while the lock is held, then sends what it produced. When the
        last commit already let the lock go (nothing to send), whether events are waiting;
        else None."""
        state = self._state(account_id, loaded)
        event = loaded.head
        outbox: list[Outbound] | None = None  # None: not read yet (a recovery): flush reads it
        while event is not None:
            bind_contextvars(event_id=event.id)
            progress, state = await self._process(account_id, event, state, lock)
            if not progress.held:
                log.warning("lost the lock of account %s; its new owner goes on", account_id)
                return None
            if progress.released:
                return progress.waiting
            event, outbox = progress.head, progress.outbox
        try:
            await self.dispatcher.flush(
                account_id, state.account, state.parsed(), state.deferred, outbox
            )
        except StoreUnavailable:
            raise
        except Exception:  # a bug must not kill the drain (each failed message is audited)
            log.exception("sending for account %s failed", account_id)
        return None

    async def idle(self) -> None:
        """Waits until every queued account has been drained and what that reserved has been
        handed to the carrier (tests, the simulator, shutdown). A failed send queues an event
        for the conversation, so the two are waited for in turn until both are quiet."""
        sender = self.dispatcher.sender
        while True:
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await sender.idle()
            if not self._tasks:
                return

    # --- background loops ----------------------------------------------------------------

    async def recover(self) -> int:
        """Queues and outboxes left by a crash or a lost lock are drained again."""
        accounts = await self.store.pending_accounts()
        for account_id in accounts:
            self.kick(account_id)
        return len(accounts)

    async def fire_due_timers(self) -> int:
        now = self.clock.now()
        accounts = await self.store.due_accounts(now)
        for account_id in accounts:
            # One tick per due time, however many processes scan: the dedup key says which.
            tick = QueuedEvent(kind="tick", at=now)
            await self.submit(account_id, tick, dedup=f"tick:{int(now.timestamp())}")
        return len(accounts)

    async def expire_cases(self) -> int:
        """Marks the desk's unclaimed cases past their SLA (bot.desk.sla)."""
        return len(await expire_cases(self.store, self.desk.config, self.clock.now()))

    @property
    def running(self) -> bool:
        """Neither closing nor paused: the background loops go on (bot.loops)."""
        return not self._closing and not self.paused

    async def close(self, grace: float = 10.0) -> None:
        """Graceful shutdown: no new work, in-flight work finishes (for ``grace`` seconds)."""
        self._closing = True
        for handle in self._watched.values():
            handle.cancel()  # what they watch stays queued: another process or the next start
        self._watched.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), grace)
        self._heartbeats.stop()

    # --- one event -----------------------------------------------------------------------

    async def _process(
        self, account_id: str, event: QueuedEvent, state: _State, lock: AccountLock
    ) -> tuple[Progress, _State]:
        """Processes one event and commits it; the state it leaves for the next event."""
        account = state.account
        audit: list[AuditEntry] = []
        outbox: list[Outbound] = []
        conv: c.Conversation | None = None
        original = conv
        case = None
        try:
            # Inside the try: a stored conversation that no longer parses must not wedge the queue.
            conv = original = state.parsed()
            if account is None:
                raise LookupError(f"account {account_id} no longer exists")
            conv, audit, outbox = await self.interpreter.apply(account, conv, event)
            # A handoff opens (or raises) the account's case, a console's resolving event
            # closes it: in this event's own commit (bot.desk.opening).
            case = await event_case(self.store, account_id, event, audit, self.desk.config)
        except StoreUnavailable:
            raise
        except Exception as exc:  # a bug or bad data must not block the borrower's queue
            log.exception("event %s of account %s failed", event.id, account_id)
            # Nothing half-done is kept: the conversation stays as it was, the error is audited.
            audit = [
                audit_entry(
                    event.at, "error", event=event.kind, error=f"{type(exc).__name__}: {exc}"
                )
            ]
            outbox.clear()
            conv = original
            case = None
        # With deferred messages the flush has work under the lock (some may be due by then);
        # otherwise, once nothing is queued nor to send, the commit lets the lock go itself.
        idle = not state.deferred
        if conv is None:
            # Nothing to keep (no conversation could be made): the event is removed, audited.
            progress = await lock.commit(event.id, None, audit, [], None, release_if_idle=idle)
            if progress.committed:
                metrics.events_committed(event.kind, audit, None)
            return progress, state
        waiting = [m.not_before for m in state.deferred if m.not_before]
        next_due = min([*conv.timers.values(), *waiting], default=None)
        stored = conv.model_dump_json()
        started = time.perf_counter()
        progress = await lock.commit(
            event.id, stored, audit, outbox, next_due, release_if_idle=idle, case=case
        )
        metrics.STORE_SECONDS.observe(time.perf_counter() - started)
        if progress.committed:
            waited = (self.clock.now() - event.at).total_seconds()
            metrics.events_committed(event.kind, audit, waited)
            if log.isEnabledFor(logging.DEBUG):  # the line carries the request and account ids
                log.debug("event %s (%s) committed after %.3f s", event.id, event.kind, waited)
        if progress.committed and (case or event.kind == "inbound"):
            for e in feed_events(self.registry, account_id, event, conv, case):
                self._spawn(self.store.desk.events.publish(e))  # off the lock
        if not progress.committed:
            log.warning(
                "event %s of account %s was committed by someone else", event.id, account_id
            )
            # What the store now holds is someone else's work: the next event reads it again.
            return progress, self._state(account_id, await self.store.load(account_id))
        self._committed.put(account_id, (stored, conv))
        return progress, _State(account, conv, state.deferred)

    def _state(self, account_id: str, loaded: Loaded) -> _State:
        raw = loaded.conversation
        known = self._committed.get(account_id)
        # Another process may have committed since: only the very text this one wrote counts.
        conv = known[1] if known is not None and known[0] == raw else raw
        return _State(loaded.account, conv, loaded.deferred)


@dataclass
class _State:
    """An account as the drain knows it: read once when the lock is taken, then carried from
    event to event (nobody else writes it while the lock is held)."""

    account: AccountRecord | None
    conversation: c.Conversation | str | None  # JSON until first needed
    deferred: list[Outbound]

    def parsed(self) -> c.Conversation | None:
        if isinstance(self.conversation, str):
            self.conversation = c.Conversation.model_validate_json(self.conversation)
        return self.conversation

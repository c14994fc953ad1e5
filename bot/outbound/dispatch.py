"""The gate step: every committed message passes the compliance gate, under the account's lock.

The drain that committed the messages calls :meth:`Dispatcher.flush` while it still holds the
lock (the gate reads the conversation; nobody else may change it meanwhile). Each message
leaves the outbox (or the deferred list) in one atomic store step with its verdict:
``deferred`` (until T), ``blocked``, or ``reserved`` — charged to the frequency ledger before
any provider call and handed to this process's sender (``bot.outbound.sender``), which calls
the carrier off the lock. A deferred message that comes due is gated again, or dropped as
``superseded`` when the conversation moved on meanwhile (a reply, a payment, a stop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime

from bot.clock import Clock
from bot.compliance.gate import Decision, Gate, GateContext
from bot.compliance.status import gate_context
from bot.outbound.record import OutboundRecord, OutState, queued
from bot.outbound.sender import Sender
from bot.records import AccountRecord, AuditEntry, Outbound, audit_entry
from bot.storage.base import Store, StoreUnavailable, Transition
from bot.telemetry import metrics
from dialogs import conversation as c
from dialogs.conversation import fingerprint
from dialogs.held import as_it_leaves
from dialogs.registry import Registry

log = logging.getLogger(__name__)


class Routing:
    """Which carrier sends to an account: per rule pack (``cn → aliyun``, ``us → twilio``),
    else the default (``SMSBOT_PROVIDER``)."""

    def __init__(self, default: str, by_pack: Mapping[str, str] | None = None) -> None:
        self.default = default
        self.by_pack = dict(by_pack or {})

    def carrier_for(self, pack: str) -> str:
        return self.by_pack.get(pack, self.default)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        gate: Gate,
        registry: Registry,
        clock: Clock,
        sender: Sender,
        routing: Routing,
    ) -> None:
        self.store = store
        self.gate = gate
        self.registry = registry
        self.clock = clock
        self.sender = sender
        self.routing = routing

    async def flush(
        self,
        account_id: str,
        account: AccountRecord | None,
        conv: c.Conversation | None,
        deferred: list[Outbound],
        outbox: list[Outbound] | None,
    ) -> None:
        """Gates the outbox (``None``: read it here, e.g. a recovery after a crash) and the
        deferred messages that are due."""
        now = self.clock.now()
        pending = outbox if outbox is not None else await self.store.queued(account_id)
        due = [m for m in deferred if m.not_before and m.not_before <= now]
        if not pending and not due:
            return
        if account is None or conv is None:
            # Nothing can be judged without them; each message is closed, not dropped.
            for msg in [*pending, *due]:
                await self._close(msg, now, "blocked", "no account or conversation")
            return
        current = fingerprint(conv) if due else ""  # only deferred messages are compared
        for msg in due:
            if msg.fingerprint != current:
                # A reply, a payment or a stop came in meanwhile: the flow has moved on.
                await self._close(msg, now, "superseded", "the conversation moved on")
                continue
            fresh, why = self._for_today(msg, conv, now)
            if fresh is None:
                await self._close(msg, now, "superseded", why)
            else:
                pending.append(fresh)
        deferred_any = False
        for msg in pending:
            try:
                decision = await self._gate(account, conv, msg, now)
            except StoreUnavailable:
                raise
            except Exception as exc:  # a bug must not wedge the outbox: the message fails
                log.exception("message %s of account %s failed", msg.id, account_id)
                await self._close(msg, now, "failed", f"{type(exc).__name__}: {exc}")
                continue
            deferred_any = deferred_any or (decision is not None and decision.verdict == "defer")
        if due or deferred_any:
            # What is due next changed after the commit: index it exactly.
            waiting = [m.not_before for m in await self.store.deferred(account_id) if m.not_before]
            next_due = min([*conv.timers.values(), *waiting], default=None)
            await self.store.set_due(account_id, next_due)

    async def _gate(
        self, account: AccountRecord, conv: c.Conversation, msg: Outbound, now: datetime
    ) -> Decision | None:
        """One verdict, stored with the message's move out of the outbox (None: someone else
        moved it first)."""
        ctx = await gate_context(self.store, self.gate, self.registry, account, conv, now)
        started = time.perf_counter()
        decision = self.gate.decide(msg, ctx, now)
        metrics.GATE_SECONDS.observe(time.perf_counter() - started)
        metrics.gate_decision(decision.verdict, decision.rules)
        until = decision.until.isoformat() if decision.until else None
        audit: list[AuditEntry] = [
            audit_entry(
                now,
                "gate",
                message_id=msg.id,
                template=msg.template,
                send_kind=msg.kind,
                verdict=decision.verdict,
                rules=list(decision.rules),
                reasons=list(decision.reasons),
                until=until,
            )
        ]
        # A message back from the senders (a retry, a send the carrier never got) keeps its
        # record: attempts and first attempt count towards its retry budget.
        stored = await self.store.outbound(account.id, msg.id) if msg.not_before else None
        base = stored.model_copy(update={"message": msg}) if stored else queued(msg)
        if decision.verdict == "defer":
            assert decision.until is not None
            held = msg.model_copy(update={"not_before": decision.until})
            record = base.model_copy(update={"message": held}).moved("deferred", now)
            moved = await self.store.move(Transition(record, None, audit, defer=True))
        elif decision.verdict == "block":
            record = base.moved("blocked", now, code=",".join(decision.rules) or None)
            moved = await self.store.move(Transition(record, None, audit))
        else:
            moved = await self._reserve(base, audit, now, ctx)
        return decision if moved else None

    async def _reserve(
        self,
        base: OutboundRecord,
        audit: list[AuditEntry],
        now: datetime,
        ctx: GateContext,
    ) -> bool:
        carrier = self.routing.carrier_for(ctx.pack.name)
        if ctx.invalid_number:
            record = base.moved("failed", now, carrier=carrier, code="invalid_number")
            audit.append(
                audit_entry(
                    now, "failed", message_id=base.id, code="invalid_number", carrier=carrier
                )
            )
            return await self.store.move(Transition(record, None, audit))
        reserved = base.moved(
            "reserved", now, carrier=carrier, reserved_at=now, next_at=None, lease=None
        )
        charge = reserved.ledger_entry()
        in_step = self.sender.sent_in_step(reserved, now, audit, charge, ctx.first_contact)
        if in_step is not None:  # the sandbox: reserved, sent and recorded in one step
            return await self.store.move(in_step)
        if await self.sender.take_slot(carrier):
            # A carrier slot is free now: reserved and claimed in one step (one store write
            # less per send, bench/inbound.py); the sender calls at once, under the slot.
            claimed = self.sender.claim(reserved, now)
            record = claimed.model_copy(update={"version": reserved.version})  # one stored step
            audit.append(audit_entry(now, "sending", message_id=base.id, attempt=record.attempts))
            t = Transition(
                record,
                None,
                audit,
                charge=charge,
                first_contact=ctx.first_contact,
                due=record.next_at,
            )
            moved = False
            try:
                moved = await self.store.move(t)
            finally:
                if not moved:  # refused, or the store failed: the slot goes back unused
                    self.sender.give_slot(carrier)
            if moved:
                self.sender.call(record)
            return moved
        t = Transition(
            reserved,
            None,
            audit,
            charge=charge,
            first_contact=ctx.first_contact,
            due=self.sender.handoff_at(now),
        )
        if not await self.store.move(t):
            return False
        self.sender.submit(reserved)
        return True

    def _for_today(
        self, msg: Outbound, conv: c.Conversation, now: datetime
    ) -> tuple[Outbound | None, str]:
        """A deferred message as it may leave now (``dialogs.held.as_it_leaves``), or None
        and why when it no longer makes sense."""
        leaving = as_it_leaves(
            self.registry.get(conv.flow), conv, msg.template, msg.created_at, now
        )
        if leaving.dropped is not None:
            return None, leaving.dropped
        if leaving.rendered is not None:
            text, params, segments = leaving.rendered
            return msg.model_copy(update={"text": text, "params": params, "segments": segments}), ""
        return msg, ""

    async def _close(self, msg: Outbound, now: datetime, state: OutState, why: str) -> None:
        record = queued(msg).moved(state, now, detail=why)
        audit = [audit_entry(now, state, message_id=msg.id, template=msg.template, detail=why)]
        await self.store.move(Transition(record, None, audit))

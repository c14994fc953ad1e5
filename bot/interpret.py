"""What one queued event means for a conversation: the borrower's text understood, the dialog
stepped, the step's actions turned into audit entries and outbound messages, the borrower's
stated preferences and re-subscriptions kept. The pipeline (``bot.pipeline``) decides when
and under which lock this runs, and commits what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.compliance import preferences as prefs
from bot.compliance.gate import Gate
from bot.compliance.status import gate_context
from bot.compliance.window import Preferences
from bot.desk.compose import agent_outbound
from bot.desk.effects import agent_event, apply_desk
from bot.desk.errors import InvalidRequest
from bot.memo import Memo
from bot.records import (
    AccountRecord,
    AuditEntry,
    DeskAction,
    Outbound,
    QueuedEvent,
    SendKind,
    audit_entry,
)
from bot.storage.base import Store
from bot.telemetry import metrics
from dialogs import conversation as c
from dialogs.conversation import fingerprint
from dialogs.engine import CompiledFlow, new_conversation, step
from dialogs.held import counted_from_delivery
from dialogs.registry import Registry
from dialogs.schema import Flag
from intents import Understander, Understanding

_READINGS_MEMO = 4096


def dialog_account(acc: AccountRecord) -> c.Account:
    assert acc.last4 is not None  # filled in by AccountRecord's validator
    return c.Account(
        id=acc.id, name=acc.name, amount_due=acc.amount_due, due_date=acc.due_date, last4=acc.last4
    )


def _quotes(conv: c.Conversation, acc: AccountRecord) -> bool:
    """Whether the conversation quotes the account as the ledger has it now, field by field
    as :func:`dialog_account` copies them (checked for every event: cheaper than building
    the dialog's account to compare)."""
    q = conv.account
    return (q.amount_due, q.due_date, q.name, q.last4, q.id) == (
        acc.amount_due,
        acc.due_date,
        acc.name,
        acc.last4,
        acc.id,
    )


class Interpreter:
    def __init__(self, store: Store, nlu: Understander, registry: Registry, gate: Gate) -> None:
        self.store = store
        self.nlu = nlu
        self.registry = registry
        self.gate = gate
        self._readings: Memo[int, tuple[Understanding, c.Reply, dict[str, Any]]] = Memo(
            _READINGS_MEMO
        )

    async def apply(
        self, account: AccountRecord, conv: c.Conversation | None, event: QueuedEvent
    ) -> tuple[c.Conversation, list[AuditEntry], list[Outbound]]:
        """The conversation after ``event``, its audit entries and the messages it sends.
        Raises on bad data or a bug: the caller keeps nothing of it."""
        audit: list[AuditEntry] = []
        outbox: list[Outbound] = []
        cf = self.registry.get(conv.flow if conv else account.flow)
        if conv is None:
            conv = new_conversation(cf, dialog_account(account), account.id)
        # The ledger may have changed (amount due); the conversation quotes the latest.
        if not _quotes(conv, account):
            conv = conv.model_copy(update={"account": dialog_account(account)})
        suppressed_before = conv.has(Flag.OPTED_OUT) or conv.has(Flag.WRONG_NUMBER)
        # Answers to the borrower's own action are replies (the pack says which actions count).
        reply_to = self.gate.pack(account.pack).frequency.reply_to
        kind: SendKind = "reply" if event.kind in reply_to else "proactive"
        if event.kind == "tick":
            conv = await self._follow_delivery(account.id, cf, conv, event.at, audit)
        if event.desk is not None:  # a person's console action (bot.desk)
            conv = apply_desk(conv, event.desk, event.at, audit)
            if event.desk.do == "message":
                await self._agent_message(account, cf, conv, event.desk, event.at, audit, outbox)
        for dialog_event, at in self._dialog_events(account, conv, event, audit):
            before = conv.state
            conv, actions = step(cf, conv, dialog_event, at)
            audit.append(
                audit_entry(
                    at,
                    "step",
                    event=c.event_label(dialog_event),
                    before=before,
                    after=conv.state,
                )
            )
            audit.extend(self._actions(account, cf, conv, kind, at, actions, outbox))
        if event.kind == "inbound":
            assert event.inbound is not None
            await self._remember_preferences(account.id, event.inbound.text, audit, event.at)
            await self._resubscribe(account, conv, event.inbound.text, audit, event.at)
        if (conv.has(Flag.OPTED_OUT) or conv.has(Flag.WRONG_NUMBER)) and not suppressed_before:
            # A stop, or a number that is not the borrower's: suppressed for every account on
            # it, whatever state the conversation was in (the one confirmation or apology
            # still goes: a confirmation without debt content).
            # Cross-account suppression is written first: honoured before anything else runs.
            await self.store.add_opt_out(account.phone)
        return conv, audit, outbox

    async def _agent_message(
        self,
        account: AccountRecord,
        cf: CompiledFlow,
        conv: c.Conversation,
        desk: DeskAction,
        at: datetime,
        audit: list[AuditEntry],
        outbox: list[Outbound],
    ) -> None:
        """A person's message into the outbox: the gate step judges it at send time like any
        other (it was only previewed at the console). Its id was chosen at the console; an
        event queued again with it (a retry) finds the record and sends nothing more."""
        assert desk.message_id is not None
        if any(r.id == desk.message_id for r in await self.store.outbound_records(account.id)):
            return
        try:
            msg = agent_outbound(
                account,
                cf,
                conv,
                message_id=desk.message_id,
                text=desk.text,
                template=desk.template,
                at=at,
                fingerprint=fingerprint(conv),
            )
        except InvalidRequest as exc:
            # The template cannot be written any more (the promise it quotes is gone since
            # the preview): the agent's message is refused, the event is not lost.
            refused = audit_entry(
                at,
                "agent_message",
                by=desk.agent,
                case_id=desk.case_id,
                template=desk.template,
                verdict="block",
                reasons=[str(exc)],
            )
            audit.append(refused)
            return
        outbox.append(msg)
        audit.append(
            audit_entry(
                at,
                "send",
                message_id=msg.id,
                template=msg.template,
                text=msg.text,
                by=desk.agent,
                case_id=desk.case_id,
            )
        )

    async def _follow_delivery(
        self,
        account_id: str,
        cf: CompiledFlow,
        conv: c.Conversation,
        now: datetime,
        audit: list[AuditEntry],
    ) -> c.Conversation:
        """The flow's clock follows delivery, not decision. An ``after:`` timer the flow set in
        the same step as a message ("3 days without an answer" after a follow-up) counts from
        when that message left: held by the gate (quiet hours, a cap), its delay counts from
        when the message left, or is held still (dialogs.held.counted_from_delivery). A
        message that never left moves nothing (there was no contact to wait on); a timer on a
        date (the promised day) never moves."""
        due = {name: at for name, at in conv.timers.items() if at <= now}
        if not due:
            return conv  # the common tick costs no store read
        paced = {
            (name, at): r
            for r in await self.store.outbound_records(account_id)
            for name, at in r.message.paces.items()
        }
        timers = dict(conv.timers)
        settings = cf.flow.spec.settings
        for name, at in due.items():
            r = paced.get((name, at))
            left = r.sent_at if r is not None and r.sent_at else None
            if r is not None and r.state in ("queued", "deferred") and r.message.not_before:
                left = r.message.not_before  # held still: at least until then
            if r is None or left is None:
                continue
            after = r.message.pace_delays.get(name)
            later = counted_from_delivery(at, r.message.created_at, left, after, settings)
            if later is None:
                continue
            timers[name] = later
            audit.append(
                audit_entry(
                    now,
                    "timer_moved",
                    timer=name,
                    was=at.isoformat(),
                    due=timers[name].isoformat(),
                    message_id=r.id,
                    template=r.message.template,
                    why="counted from when the message left",
                )
            )
        return conv.model_copy(update={"timers": timers}) if timers != conv.timers else conv

    def _tz(self, account: AccountRecord) -> ZoneInfo:
        """The borrower's zone (for 明天, 周五 …)."""
        return self.gate.zones(account.phone, account.tz, self.gate.pack(account.pack))[0]

    def _dialog_events(
        self,
        account: AccountRecord,
        conv: c.Conversation,
        event: QueuedEvent,
        audit: list[AuditEntry],
    ) -> Iterable[tuple[c.AnyEvent, datetime]]:
        match event.kind:
            case "inbound":
                assert event.inbound is not None
                started = time.perf_counter()
                u = self.nlu.understand(event.inbound.text, now=event.at, tz=self._tz(account))
                metrics.NLU_SECONDS.observe(time.perf_counter() - started)
                reply, understood = self._reading(u)
                audit.append(
                    audit_entry(
                        event.at,
                        "inbound",
                        provider=event.inbound.provider,
                        msg_id=event.inbound.msg_id,
                        text=event.inbound.text,
                    )
                )
                audit.append(audit_entry(event.at, "understood", **understood))
                yield reply, event.at
            case "start":
                yield c.Start(), event.at
            case "payment":
                assert event.amount is not None
                audit.append(
                    audit_entry(
                        event.at, "payment", amount=str(event.amount), reference=event.reference
                    )
                )
                yield c.Payment(amount=event.amount), event.at
            case "agent":
                agent = agent_event(event.action, event.desk)
                if agent is not None:
                    yield agent, event.at
            case "delivery_failed":
                yield c.DeliveryFailed(reason=event.reason or ""), event.at
            case "tick":
                # Counted here, where the timers fire: every process's scan may queue a tick
                # for the same account, and only the first to be processed finds them due.
                due = list(_due_timers(conv, event.at))
                metrics.TIMERS_FIRED.inc(len(due))
                yield from due

    def _reading(self, u: Understanding) -> tuple[c.Reply, dict[str, Any]]:
        """The dialog's event and the audited reading of an NLU answer. The NLU hands out the
        same answer object for a text it has seen that day; its reading is made once."""
        known = self._readings.get(id(u))
        if known is not None and known[0] is u:  # the entry holds u: its id is not reused
            return known[1], known[2]
        reply = c.reply_from_understanding(u)
        understood = {
            "intent": u.intent.value,
            "intents": [{"name": s.name.value, "score": s.score} for s in u.intents],
            "entities": u.entities_json(),
            "rules": [h.rule for h in u.explain.rules],
        }
        self._readings.put(id(u), (u, reply, understood))
        return reply, understood

    def _actions(
        self,
        account: AccountRecord,
        cf: CompiledFlow,
        conv: c.Conversation,
        kind: SendKind,
        at: datetime,
        actions: list[c.AnyAction],
        outbox: list[Outbound],
    ) -> Iterable[AuditEntry]:
        written_for: str | None = None  # the conversation's fingerprint, once per step
        # The timers this step set count from its messages (see _follow_delivery).
        paces: dict[str, datetime] = {}
        delays: dict[str, timedelta] = {}
        for a in actions:
            if isinstance(a, c.Schedule) and a.after is not None:  # a timer on a date stays
                paces[a.timer], delays[a.timer] = a.at, a.after
        for action in actions:
            if isinstance(action, c.Send):
                written_for = written_for or fingerprint(conv)
                spec = cf.flow.templates[action.template]
                suppressed = conv.has(Flag.OPTED_OUT) or conv.has(Flag.WRONG_NUMBER)
                confirmation = suppressed and not action.debt_content
                msg = Outbound(
                    account_id=account.id,
                    phone=account.phone,
                    text=action.text,
                    template=action.template,
                    codes=action.codes,
                    params=action.params,
                    segments=action.segments,
                    debt_content=action.debt_content,
                    created_at=at,
                    kind="confirmation" if confirmation else kind,
                    approved=spec.approved,
                    fingerprint=written_for,
                    paces=paces,
                    pace_delays=delays,
                )
                outbox.append(msg)
                yield audit_entry(
                    at, "send", message_id=msg.id, template=action.template, text=action.text
                )
            else:
                yield audit_entry(
                    at, action.kind, **action.model_dump(mode="json", exclude={"kind"})
                )

    async def _resubscribe(
        self,
        account: AccountRecord,
        conv: c.Conversation,
        text: str,
        audit: list[AuditEntry],
        at: datetime,
    ) -> None:
        words = self.gate.pack(account.pack).optout.resubscribe_keywords
        if text.strip().casefold() not in {w.casefold() for w in words}:
            return  # the common case costs no store round trip
        ctx = await gate_context(self.store, self.gate, self.registry, account, conv, at)
        decision = self.gate.resubscribes(ctx, text)
        if decision is None:
            return
        if decision.verdict == "send":
            await self.store.remove_opt_out(account.phone)
        audit.append(
            audit_entry(
                at,
                "resubscribe",
                verdict=decision.verdict,
                rules=list(decision.rules),
                reasons=list(decision.reasons),
            )
        )

    async def _remember_preferences(
        self, account_id: str, text: str, audit: list[AuditEntry], at: datetime
    ) -> None:
        """晚上别发, 上班时间别发: what the borrower asks for is kept and honoured by the gate."""
        found = prefs.extract(text)
        if not found:
            return
        raw = await self.store.get_meta(account_id, "preferences")
        merged = prefs.merge(Preferences.model_validate_json(raw) if raw else None, found)
        await self.store.set_meta(account_id, "preferences", merged.model_dump_json())
        audit.append(audit_entry(at, "preference", periods=[q.label for q in found]))


def _due_timers(conv: c.Conversation, until: datetime) -> Iterable[tuple[c.AnyEvent, datetime]]:
    """Due timers, each at its own due time (never before the conversation's last change)."""
    floor = conv.updated_at
    for at, name in sorted((at, name) for name, at in conv.timers.items() if at <= until):
        yield c.TimerFired(name=name), max(at, floor) if floor else at

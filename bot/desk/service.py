"""The case queue as the console's web layer calls it: every function takes the signed-in
agent's name and role. Nothing here is a web route (``bot/console`` is the web layer's).

- Reading (the queue, one case) and assignment (claim, release, reassign, notes) are direct
  atomic store steps on the account's case (``bot.storage.desk``), published on the live feed.
- Everything that touches the conversation — resolving (give back to the bot at a chosen
  state, keep paused, close), a promise, an instalment plan, a dispute or hardship hold — is
  an ``agent`` event queued on the account (``QueuedEvent.desk``), so it never races the
  pipeline; a resolve closes the case in the commit of its own effects, exactly once.
- An agent's message (``send_message``) is previewed by the same compliance gate as every
  message (``bot.desk.compose``): a block queues nothing and says which rule; otherwise it is
  queued as an agent event and the send path runs the gate again when it goes.
- The conversation as an agent reads it is ``bot.desk.view`` (masked unless revealed, and a
  reveal is audited); messages from unknown numbers are ``bot.desk.unmatched``.
- Only the case's holder (or a supervisor) acts on a case; only a supervisor reassigns.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from bot.clock import Clock
from bot.compliance.gate import Gate
from bot.compliance.status import gate_context
from bot.desk.case import Case, check_agent, queue_order
from bot.desk.compose import agent_outbound, offered_templates, refused_entry
from bot.desk.errors import CaseNotFound, InvalidRequest, PermissionDenied
from bot.desk.unmatched import Submit, UnmatchedMessages
from bot.desk.view import CaseView, MessageVerdict, build_view, give_back_states
from bot.ids import new_id
from bot.records import DeskAction, Instalment, QueuedEvent, audit_entry
from bot.storage.base import Store
from bot.storage.desk import Required
from bot.storage.desk_events import DeskEvent
from dialogs import conversation as c
from dialogs.registry import Registry
from dialogs.schema import AgentAction

Resolution = Literal["return", "keep_paused", "close"]
PROMISE_HORIZON_DAYS = 366  # a promise further out is a typo, or a plan (record_plan)


class Desk(UnmatchedMessages):
    """One per process: ``submit`` queues an event on an account and makes sure it is drained
    (``Pipeline.submit``)."""

    def __init__(
        self, store: Store, submit: Submit, registry: Registry, clock: Clock, gate: Gate
    ) -> None:
        self.store = store
        self.submit = submit
        self.registry = registry
        self.clock = clock
        self.gate = gate

    # --- reading ---------------------------------------------------------------------------

    async def list_cases(
        self,
        agent: str,
        role: str,
        *,
        mine: bool = False,
        unassigned: bool = False,
        reason: str | None = None,
    ) -> list[Case]:
        """Open cases: expired SLA first, then priority, then the longest waiting."""
        check_agent(agent, role)
        cases = await self.store.desk.open_cases()
        if mine:
            cases = [k for k in cases if k.holder == agent]
        if unassigned:
            cases = [k for k in cases if k.holder is None]
        if reason is not None:
            cases = [k for k in cases if k.reason == reason]
        return queue_order(cases, self.clock.now())

    async def get_case(self, agent: str, role: str, account_id: str) -> Case | None:
        """The account's open case (None: none is open)."""
        check_agent(agent, role)
        return await self.store.desk.case(account_id)

    async def closed_cases(self, agent: str, role: str, account_id: str) -> list[Case]:
        check_agent(agent, role)
        return await self.store.desk.closed_cases(account_id)

    async def give_back_states(self, agent: str, role: str, account_id: str) -> dict[str, str]:
        """The states the flow lets a person give the conversation back to, from where it is
        now, and the agent action that does it (``resolve(…, "return", to_state=…)``)."""
        check_agent(agent, role)
        return give_back_states(self.registry, await self._conversation(account_id))

    async def view(
        self, agent: str, role: str, account_id: str, *, reveal: bool = False
    ) -> CaseView:
        """The conversation as the console shows it; masked unless ``reveal``, and a reveal
        is audited (who saw the borrower's number and name, and when) before it is shown."""
        check_agent(agent, role)
        now = self.clock.now()
        if reveal:
            if await self.store.get_account(account_id) is None:
                raise CaseNotFound(f"no account {account_id!r}")
            await self.store.append_audit(account_id, [audit_entry(now, "reveal", by=agent)])
        return await build_view(
            self.store, self.gate, self.registry, now, account_id, reveal=reveal
        )

    async def templates(self, agent: str, role: str, account_id: str) -> list[dict[str, Any]]:
        """The flow's templates written for this account, for the composer: ``name``,
        ``text``, ``approved`` (a bool). Those the account cannot fill (a promised date with
        no promise) are left out."""
        check_agent(agent, role)
        conv = await self._conversation(account_id)
        return offered_templates(self.registry.get(conv.flow), conv, self.clock.now())

    async def send_message(
        self,
        agent: str,
        role: str,
        account_id: str,
        case_id: str,
        *,
        text: str | None = None,
        template: str | None = None,
    ) -> MessageVerdict:
        """A person's SMS to the borrower: free text or one of the flow's templates. The
        gate's decision is previewed now on the very message that would be queued; a block
        queues nothing (audited as ``agent_message``). Otherwise the message is queued through
        the account's queue and the gate judges it again when it leaves (a deferral waits
        for its time like any message). Two clicks are two messages; a retried event of one
        message sends it once (its id is chosen here)."""
        await self._holding(agent, role, account_id, case_id)
        account = await self.store.get_account(account_id)
        if account is None:
            raise CaseNotFound(f"no account {account_id!r}")
        conv = await self._conversation(account_id)
        now = self.clock.now()
        msg = agent_outbound(
            account,
            self.registry.get(conv.flow),
            conv,
            message_id=new_id(),
            text=text,
            template=template,
            at=now,
        )
        ctx = await gate_context(self.store, self.gate, self.registry, account, conv, now)
        decision = self.gate.decide(msg, ctx, now)
        rules, reasons = list(decision.rules), list(decision.reasons)
        if decision.verdict == "block":
            entry = refused_entry(now, agent, case_id, msg, rules, reasons)
            await self.store.append_audit(account_id, [entry])
            return MessageVerdict(verdict="block", rules=rules, reasons=reasons, text=msg.text)
        desk = self._action(
            agent,
            case_id,
            "message",
            message_id=msg.id,
            text=msg.text if template is None else None,
            template=template,
        )
        await self._queue(account_id, desk, None, dedup=f"desk:message:{msg.id}")
        return MessageVerdict(
            verdict=decision.verdict,
            until=decision.until,
            rules=rules,
            reasons=reasons,
            message_id=msg.id,
            text=msg.text,
        )

    # --- assignment ------------------------------------------------------------------------

    async def claim(self, agent: str, role: str, account_id: str, case_id: str) -> Case:
        """Of two agents at once exactly one wins; the other gets CaseHeld naming the holder."""
        check_agent(agent, role)
        case = await self.store.desk.claim(account_id, case_id, agent, self.clock.now())
        await self._publish("case_claimed", case, agent)
        return case

    async def release(self, agent: str, role: str, account_id: str, case_id: str) -> Case:
        """Back to waiting: by its holder, or by a supervisor whoever holds it."""
        r = check_agent(agent, role)
        required: Required = "any" if r == "supervisor" else "holder"
        case = await self.store.desk.assign(
            account_id, case_id, by=agent, holder=None, required=required, at=self.clock.now()
        )
        await self._publish("case_released", case, agent)
        return case

    async def reassign(self, agent: str, role: str, account_id: str, case_id: str, to: str) -> Case:
        if check_agent(agent, role) != "supervisor":
            raise PermissionDenied(f"{agent} may not reassign cases: supervisors only")
        check_agent(to, "agent")
        case = await self.store.desk.assign(
            account_id, case_id, by=agent, holder=to, required="any", at=self.clock.now()
        )
        await self._publish("case_reassigned", case, agent, to=to)
        return case

    async def add_note(
        self, agent: str, role: str, account_id: str, case_id: str, text: str
    ) -> Case:
        """By the case's holder (or a supervisor), like every other action on it."""
        await self._holding(agent, role, account_id, case_id)
        if not text.strip() or len(text) > 2000:
            raise InvalidRequest("备注为 1 至 2000 字 (a note is 1 to 2000 characters)")
        now = self.clock.now()
        case = await self.store.desk.add_note(account_id, case_id, agent, text, now)
        # The account's own history says who wrote what (the case's log is the console's).
        await self.store.append_audit(
            account_id, [audit_entry(now, "agent", by=agent, do="note", case_id=case_id, note=text)]
        )
        await self._publish("case_note", case, agent)
        return case

    # --- actions through the account's queue ------------------------------------------------

    async def resolve(
        self,
        agent: str,
        role: str,
        account_id: str,
        case_id: str,
        how: Resolution,
        *,
        to_state: str | None = None,
        promise_date: dt.date | None = None,
        promise_amount: Decimal | None = None,
        note: str | None = None,
    ) -> bool:
        """Queues the resolving event: ``return`` gives the conversation back to the bot at
        ``to_state`` (one of :meth:`give_back_states`; ``promised`` takes the promise given
        here or the one on record), ``keep_paused`` leaves it with a person and no case,
        ``close`` ends it. The case closes in that event's commit. False if this case's
        resolution was queued already (a second click)."""
        await self._holding(agent, role, account_id, case_id)
        action: str | None = None
        if how == "return":
            states = await self.give_back_states(agent, role, account_id)
            if to_state not in states:
                # A second click can find the conversation moved on by the first: the case
                # closed in that same commit, read after the conversation so it is seen.
                now_open = await self.store.desk.case(account_id)
                if now_open is None or now_open.id != case_id:
                    raise CaseNotFound(f"case {case_id} was resolved meanwhile")
                raise InvalidRequest(
                    f"cannot give the conversation back at {to_state!r} from where it is; "
                    f"possible: {', '.join(sorted(states)) or 'none'}"
                )
            action = states[to_state]
            if promise_date is not None:
                await self._check_promise(account_id, promise_date, promise_amount)
            if action == AgentAction.PROMISED and promise_date is None:
                # A plan on record: its first instalment; else the promise on record.
                kept = c.given_back_promise(await self._conversation(account_id))
                if kept is None:
                    raise InvalidRequest(
                        f"交还到 {to_state} 需要承诺日期 ({to_state!r} needs a promised date)"
                    )
                promise_date, promise_amount = kept
                # A day that passed while a person held the case would be broken at once.
                await self._check_promise(account_id, kept[0], None, horizon_days=3 * 366)
        elif how == "close":
            action = AgentAction.CLOSED
        elif how != "keep_paused":
            raise InvalidRequest(f"unknown resolution {how!r}: return, keep_paused or close")
        resolution = {"return": "returned", "keep_paused": "kept_paused", "close": "closed"}[how]
        desk = DeskAction.model_validate(
            {
                "agent": agent,
                "case_id": case_id,
                "do": "resolve",
                "resolution": resolution,
                "to_state": to_state if how == "return" else None,
                "promise_date": promise_date,
                "promise_amount": promise_amount,
                "note": note,
            }
        )
        return await self._queue(account_id, desk, action, dedup=f"desk:resolve:{case_id}")

    async def record_promise(
        self,
        agent: str,
        role: str,
        account_id: str,
        case_id: str,
        date: dt.date,
        amount: Decimal | None = None,
    ) -> bool:
        """The promise agreed with the borrower, kept on the conversation while a person
        holds it (the bot reminds only once given back at ``promised``)."""
        await self._holding(agent, role, account_id, case_id)
        await self._check_promise(account_id, date, amount)
        desk = self._action(agent, case_id, "promise", promise_date=date, promise_amount=amount)
        return await self._queue(account_id, desk, None)

    async def record_plan(
        self, agent: str, role: str, account_id: str, case_id: str, plan: list[Instalment]
    ) -> bool:
        """An instalment plan, kept on the conversation (replacing any earlier one; an empty
        plan clears it). Given back at ``promised``, the bot reminds of and checks each
        instalment in turn (the flow's ``next_instalment``)."""
        await self._holding(agent, role, account_id, case_id)
        if len(plan) > 36:
            raise InvalidRequest("a plan has at most 36 instalments")
        if [i.due for i in plan] != sorted(i.due for i in plan):
            raise InvalidRequest("分期须按日期排列 (instalments must be in date order)")
        for i in plan:
            await self._check_promise(account_id, i.due, i.amount, horizon_days=3 * 366)
        desk = self._action(agent, case_id, "plan", plan=plan)
        return await self._queue(account_id, desk, None)

    async def set_hold(
        self,
        agent: str,
        role: str,
        account_id: str,
        case_id: str,
        hold: Literal["disputed", "hardship"],
        on: bool,
    ) -> bool:
        """Sets or clears a dispute or hardship hold (the gate's HOLD-01 reads them)."""
        await self._holding(agent, role, account_id, case_id)
        desk = self._action(agent, case_id, "hold", hold=hold, hold_on=on)
        return await self._queue(account_id, desk, None)

    # --- helpers ---------------------------------------------------------------------------

    async def _check_promise(
        self,
        account_id: str,
        day: dt.date,
        amount: Decimal | None,
        horizon_days: int = PROMISE_HORIZON_DAYS,
    ) -> None:
        """A promise the flow can keep track of: from today (the borrower's day) to the
        horizon, and no more than is owed — a typo (2020, ¥999999 on ¥3200) is refused with
        the reason, not recorded and shown as broken."""
        account = await self.store.get_account(account_id)
        if account is None:
            raise CaseNotFound(f"no account {account_id!r}")
        zone = self.gate.zones(account.phone, account.tz, self.gate.pack(account.pack))[0]
        today = self.clock.now().astimezone(zone).date()
        last = today + dt.timedelta(days=horizon_days)
        if not today <= day <= last:
            raise InvalidRequest(
                f"日期须在 {today} 至 {last} 之间 (the date must be from today, {today}, to {last})"
            )
        raw = await self.store.get_conversation(account_id)
        owed = c.Conversation.model_validate_json(raw).outstanding if raw else account.amount_due
        if amount is not None and amount > owed:
            raise InvalidRequest(f"金额超过未还的 ¥{owed} (more than the ¥{owed} still owed)")

    async def _holding(self, agent: str, role: str, account_id: str, case_id: str) -> Case:
        r = check_agent(agent, role)
        case = await self.store.desk.case(account_id)
        if case is None or case.id != case_id:
            raise CaseNotFound(f"account {account_id} has no open case {case_id}")
        if case.holder != agent and r != "supervisor":
            who = f"held by {case.holder}" if case.holder else "not claimed"
            raise PermissionDenied(f"case {case_id} is {who}: claim it first")
        return case

    def _action(self, agent: str, case_id: str, do: str, **fields: object) -> DeskAction:
        return DeskAction.model_validate({"agent": agent, "case_id": case_id, "do": do, **fields})

    async def _queue(
        self, account_id: str, desk: DeskAction, action: str | None, dedup: str | None = None
    ) -> bool:
        event = QueuedEvent(kind="agent", at=self.clock.now(), action=action, desk=desk)
        return await self.submit(account_id, event, dedup)

    async def _conversation(self, account_id: str) -> c.Conversation:
        raw = await self.store.get_conversation(account_id)
        if raw is None:
            raise CaseNotFound(f"account {account_id} has no conversation")
        return c.Conversation.model_validate_json(raw)

    async def _publish(self, kind: str, case: Case, by: str, **detail: object) -> None:
        await self.store.desk.events.publish(
            DeskEvent(
                kind=kind,
                account_id=case.account_id,
                at=self.clock.now(),
                case_id=case.id,
                by=by,
                detail={"holder": case.holder, **detail},
            )
        )

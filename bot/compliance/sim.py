"""The gate for in-process runs (conversation tests, the terminal simulator).

It keeps the send ledger of the one simulated borrower, so caps, opt-out confirmations and
the contact window are judged exactly as the service judges them. A deferred message is
reported ("defer until 12-03 08:00") but not replayed later: the service does that part.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.compliance.gate import Decision, Gate, GateContext, text_hash
from bot.records import Outbound, SendRecord
from dialogs import conversation as c
from dialogs.engine import CompiledFlow
from dialogs.held import describe
from dialogs.schema import Flag


class GateReviewer:
    def __init__(self, gate: Gate, pack: str | None = None) -> None:
        self.gate = gate
        self.pack = gate.pack(pack)
        self.history: list[SendRecord] = []

    @classmethod
    def load(cls, pack: str | None = None, path: Path | None = None) -> GateReviewer:
        """The reviewer with the rule packs of ``path`` (default: the repository's file)."""
        return cls(Gate.load(path) if path is not None else Gate.load(), pack)

    def start_test(self) -> None:
        self.history = []

    def review(
        self,
        cf: CompiledFlow,
        conv: c.Conversation,
        sends: list[c.Send],
        answers: str | None,
        now: datetime,
    ) -> list[str]:
        zone = ZoneInfo(cf.flow.spec.settings.timezone)
        return [describe(d, zone) for d in self.decide(cf, conv, sends, answers, now)]

    def decide(
        self,
        cf: CompiledFlow,
        conv: c.Conversation,
        sends: list[c.Send],
        answers: str | None,
        now: datetime,
    ) -> list[Decision]:
        """``answers``: the borrower's action the messages answer (``inbound``, ``payment``),
        None when the bot starts them; the pack says which actions make a reply."""
        reply = answers in self.pack.frequency.reply_to
        state = cf.flow.spec.states.get(conv.state)
        decisions = []
        for send in sends:
            spec = cf.flow.templates[send.template]
            confirmation = conv.has(Flag.OPTED_OUT) and not send.debt_content
            msg = Outbound(
                account_id=conv.id,
                phone="+0",
                text=send.text,
                template=send.template,
                debt_content=send.debt_content,
                created_at=now,
                approved=spec.approved,
                kind="confirmation" if confirmation else ("reply" if reply else "proactive"),
            )
            ctx = GateContext(
                pack=self.pack,
                zones=[ZoneInfo(cf.flow.spec.settings.timezone)],
                flags=frozenset(f.value for f in conv.flags),
                agent_owned=state is not None and state.owner == "agent",
                history=list(self.history),
                first_contact=not self.history,
            )
            decision = self.gate.decide(msg, ctx, now)
            if decision.verdict == "send":
                self.history.append(
                    SendRecord(
                        at=now,
                        account_id=conv.id,
                        message_id=msg.id,
                        kind=msg.kind,
                        text_hash=text_hash(msg.text),
                    )
                )
            decisions.append(decision)
        return decisions

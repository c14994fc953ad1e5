"""``smsbot simulate``: play the borrower against a flow, with a clock you move by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TextIO

from common.errors import SmsbotError, UsageError
from dialogs import conversation as c
from dialogs.convtest import Reviewer, Understand, nlu_understander
from dialogs.engine import CompiledFlow, new_conversation, run_until, step
from dialogs.schema import AgentAction, parse_duration

DEFAULT_START = "2026-12-02T10:00:00+08:00"
DEMO_ACCOUNT = c.Account(
    id="demo", name="张三", amount_due=Decimal("3200.00"), due_date=date(2026, 11, 25), last4="1234"
)

HELP = """\
Type what the borrower says, or a command:
  /wait 2d          let time pass (fires due timers)      /pay 500       a payment arrives
  /agent resolved   an agent acts (resolved|returned|closed)
  /intent NAME TEXT say TEXT with the intent pinned        /fail          delivery failed
  /state            state, flags, counters, promise       /timers        pending timers
  /json             the conversation as stored            /restart       start over
  /help             this text                             /quit          leave"""


def parse_start(text: str | None) -> datetime:
    try:
        at = datetime.fromisoformat(text or DEFAULT_START)
    except ValueError as exc:
        raise UsageError(f"--start: {exc}") from exc
    if at.tzinfo is None:
        raise UsageError("--start needs a UTC offset, e.g. 2026-12-02T10:00:00+08:00")
    return at


class Simulator:
    def __init__(
        self,
        cf: CompiledFlow,
        start: datetime,
        understand: Understand | None = None,
        account: c.Account = DEMO_ACCOUNT,
        gate: Reviewer | None = None,
    ) -> None:
        self.cf = cf
        self.gate = gate
        self.start = start
        self.account = account
        self._understand = understand
        self.restart()

    def restart(self) -> None:
        if self.gate is not None:
            self.gate.start_test()
        self.now = self.start
        self.conv = new_conversation(self.cf, self.account, "simulation")

    def understand(self, text: str) -> c.Reply:
        if self._understand is None:
            self._understand = nlu_understander()
        return self._understand(text, self.now, self.cf.flow.spec.settings.timezone)

    def run(self, inp: TextIO, out: TextIO) -> int:
        def say(line: str = "") -> None:
            print(line, file=out, flush=True)

        echo = not inp.isatty()  # scripted input: show it, so the transcript reads as a dialogue
        say(f"flow {self.cf.name} version {self.cf.version}; /help lists the commands")
        self._do(c.Start(), say)
        while True:
            print(f"[{self.now:%m-%d %H:%M}] {self.conv.state}> ", end="", file=out, flush=True)
            line = inp.readline()
            if not line:
                say()
                return 0
            line = line.strip()
            if echo:
                say(line)
            if not line:
                continue
            if line in ("/quit", "/exit"):
                return 0
            try:
                self.command(line, say)
            except (SmsbotError, ValueError) as exc:
                say(f"! {exc}")

    def command(self, line: str, say: Callable[[str], None]) -> None:
        if not line.startswith("/"):
            self._do(self.understand(line), say)
            return
        cmd, _, arg = line.partition(" ")
        arg = arg.strip()
        match cmd:
            case "/help":
                say(HELP)
            case "/wait":
                until = self.now + parse_duration(arg or "1d")
                for at, event, conv, actions in run_until(self.cf, self.conv, until):
                    say(f"  ({at:%m-%d %H:%M}) {c.event_label(event)}")
                    before, self.conv = self.conv.state, conv
                    self._show(actions, say, before, at)
                self.now = until
            case "/pay":
                try:
                    amount = Decimal(arg)
                except InvalidOperation:
                    raise UsageError(f"/pay needs an amount, not {arg!r}") from None
                self._do(c.Payment(amount=amount), say)
            case "/agent":
                self._do(c.Agent(action=AgentAction(arg)), say)
            case "/fail":
                self._do(c.DeliveryFailed(reason=arg), say)
            case "/intent":
                name, _, text = arg.partition(" ")
                reply = (
                    self.understand(text) if text else c.Reply(intents=(c.ScoredIntent(name=name),))
                )
                pinned = reply.model_copy(update={"intents": (c.ScoredIntent(name=name),)})
                self._do(pinned, say)
            case "/state":
                conv = self.conv
                say(
                    f"  state {conv.state}; flags {[f.value for f in conv.flags]}; "
                    f"counters {conv.counters}; outstanding {conv.outstanding}"
                )
                if conv.promise is not None:
                    say(f"  promise: {conv.promise.date} {conv.promise.amount or ''}".rstrip())
            case "/timers":
                if not self.conv.timers:
                    say("  no timers")
                for name, at in sorted(self.conv.timers.items(), key=lambda kv: kv[1]):
                    say(f"  {name} at {at:%m-%d %H:%M}")
            case "/json":
                say(self.conv.model_dump_json(indent=2))
            case "/restart":
                self.restart()
                self._do(c.Start(), say)
            case _:
                say(f"! unknown command {cmd}; /help lists them")

    def _do(self, event: c.AnyEvent, say: Callable[[str], None]) -> None:
        before = self.conv.state
        self.conv, actions = step(self.cf, self.conv, event, self.now)
        if isinstance(event, c.Reply):
            say(f"  (intent {self.conv.last_intent})")
        answers = (
            "inbound"
            if isinstance(event, c.Reply)
            else "payment"
            if isinstance(event, c.Payment)
            else None
        )
        self._show(actions, say, before, self.now, answers=answers)

    def _show(
        self,
        actions: list[c.AnyAction],
        say: Callable[[str], None],
        before: str,
        at: datetime,
        *,
        answers: str | None = None,
    ) -> None:
        sends = [a for a in actions if isinstance(a, c.Send)]
        verdicts = iter(
            self.gate.review(self.cf, self.conv, sends, answers, at) if self.gate else []
        )
        for a in actions:
            match a:
                case c.Send():
                    say(f"bot [{a.template}, {a.segments} SMS]: {a.text}")
                    verdict = next(verdicts, "send")
                    if verdict != "send":
                        say(f"  compliance gate: {verdict}")
                case c.Handoff():
                    say(f"  handoff to a person: {a.reason} ({a.priority})")
                case c.Blocked():
                    say(f"  blocked {a.template}: {a.reason}")
                case c.Close():
                    say(f"  closed: {a.reason}")
                case c.NotifyAgent():
                    say(f"  agent notified: {a.message}")
        if self.conv.state != before:
            say(f"  → {self.conv.state}")

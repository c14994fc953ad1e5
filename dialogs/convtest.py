"""Conversation tests: YAML scripts run through the real pipeline with a simulated clock.

A step is one of: the campaign ``start``, the borrower's reply (``say``, read by the NLU unless
``intent:`` pins it), time passing (``wait: 2d``, firing every timer due on the way), a
``pay``-ment, an ``agent`` action, or a ``delivery_failed``. Its ``expect`` checks the state,
detected intent, templates sent, text fragments, handoffs, flags, the stored promise,
counters and timers' due times — or that nothing was sent (``dialogs.expect``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field, ValidationError, model_validator

from common.errors import ConfigError, Problem
from common.yamlio import Located, load_yaml, validation_problems
from dialogs import conversation as c
from dialogs.engine import CompiledFlow, compile_flow, new_conversation, run_until, step
from dialogs.expect import Expect, PromiseExpect, QueueView, check
from dialogs.held import Judge, Moves, Queue, advance, judge
from dialogs.registry import DEFAULT_FLOWS, Registry, check_flow
from dialogs.schema import AgentAction, Duration, Frozen, format_duration

# --- file format -----------------------------------------------------------------------------


_STEP_KINDS = ("start", "say", "wait", "pay", "agent", "plan", "delivery_failed")


class Step(Frozen):
    start: bool | None = None
    say: str | None = None
    intent: str | list[str] | None = None  # pins the intent(s); the NLU is not asked
    entities: c.ReplyEntities | None = None  # pins the entities
    wait: Duration | None = None
    pay: Decimal | None = Field(default=None, gt=0)
    agent: AgentAction | None = None
    # agent: promised — the day (and amount) agreed; unset: as the console gives back without
    # one (the plan's first instalment, else the promise on record).
    promise: PromiseExpect | None = None
    # A person records an instalment plan at the console (replacing any; [] clears it).
    plan: list[c.Instalment] | None = None
    delivery_failed: str | None = None
    expect: Expect = Expect()

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        given = [k for k in _STEP_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            kinds = ", ".join(_STEP_KINDS)
            raise ValueError(f"a step is exactly one of {kinds}; got {', '.join(given) or 'none'}")
        if (self.intent is not None or self.entities is not None) and self.say is None:
            raise ValueError("`intent` and `entities` go with `say`")
        if self.promise is not None and self.agent != AgentAction.PROMISED:
            raise ValueError("`promise` goes with `agent: promised`")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _STEP_KINDS if getattr(self, k) is not None)


class AccountFixture(Frozen):
    id: str = "test-account"
    name: str = "张三"
    amount_due: Decimal = Decimal("3200.00")
    due_date: date
    last4: str = "1234"


class ConvTest(Frozen):
    name: str
    flow: str | None = None
    account: AccountFixture | None = None
    start: AwareDatetime | None = None
    steps: list[Step] = Field(min_length=1)


class ConvTestFile(Frozen):
    flow: str | None = None  # a flow name, or a path to a flow file (relative to this file)
    account: AccountFixture | None = None
    start: AwareDatetime | None = None
    tests: list[ConvTest] = Field(min_length=1)


# --- running ---------------------------------------------------------------------------------


class Understand(Protocol):
    def __call__(self, text: str, now: datetime, tz: str) -> c.Reply: ...


class Reviewer(Judge, Protocol):
    """The compliance gate as seen by a test: its decisions (``Judge.decide``; the deferral
    queue plays them, dialogs.held), and one verdict line per message for the simulator."""

    def start_test(self) -> None: ...

    def review(
        self,
        cf: CompiledFlow,
        conv: c.Conversation,
        sends: list[c.Send],
        answers: str | None,  # the borrower's action they answer: inbound, payment, or None
        now: datetime,
    ) -> list[str]: ...


def nlu_understander() -> Understand:
    """The real NLU, built once (it trains its model at load)."""
    from intents import Understander

    nlu = Understander.load()

    def understand(text: str, now: datetime, tz: str) -> c.Reply:
        return c.reply_from_understanding(nlu.understand(text, now=now, tz=tz))

    return understand


@dataclass
class StepRecord:
    index: int
    line: int | None
    at: datetime
    label: str
    intent: str | None
    state: str
    actions: list[c.AnyAction]
    failures: list[str] = field(default_factory=list)
    gate: list[str] = field(default_factory=list)  # "send", "defer until …", "block (rules)"
    queue: QueueView = field(default_factory=QueueView)  # what the gate holds (dialogs.held)


@dataclass
class TestResult:
    file: str
    name: str
    line: int | None
    records: list[StepRecord] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not any(r.failures for r in self.records)


class FlowSource:
    """Finds the flow a test names: a loaded flow by name, or a flow file by path."""

    def __init__(self, flows_dir: Path = DEFAULT_FLOWS) -> None:
        self.flows_dir = flows_dir
        self._registry: Registry | None = None
        self._files: dict[Path, CompiledFlow] = {}

    def get(self, ref: str, base: Path) -> CompiledFlow:
        if ref.endswith((".yaml", ".yml")):
            path = (base / ref).resolve()
            if path not in self._files:
                flow, problems = check_flow(path)
                if problems or flow is None:
                    raise ConfigError(problems)
                self._files[path] = compile_flow(flow)
            return self._files[path]
        if self._registry is None:
            self._registry = Registry.load(self.flows_dir)
        return self._registry.get(ref)


class Runner:
    def __init__(
        self,
        flows: FlowSource | None = None,
        understand: Understand | None = None,
        gate: Reviewer | None = None,
    ) -> None:
        self.flows = flows or FlowSource()
        self._understand = understand
        self.gate = gate

    def understand(self, text: str, now: datetime, tz: str) -> c.Reply:
        if self._understand is None:
            self._understand = nlu_understander()
        return self._understand(text, now, tz)

    def run_file(self, path: Path) -> list[TestResult]:
        doc = load_yaml(path)
        try:
            spec = ConvTestFile.model_validate(doc.data)
        except ValidationError as exc:
            raise ConfigError(validation_problems(exc, doc)) from exc
        results = []
        for i, test in enumerate(spec.tests):
            results.append(self._run_test(doc, path, spec, test, i))
        return results

    def _run_test(
        self, doc: Located, path: Path, file: ConvTestFile, test: ConvTest, index: int
    ) -> TestResult:
        result = TestResult(doc.file, test.name, doc.line(("tests", index)))
        flow_ref = test.flow or file.flow
        account = test.account or file.account
        now = test.start or file.start
        missing = [
            n for n, v in (("flow", flow_ref), ("account", account), ("start", now)) if not v
        ]
        if missing or flow_ref is None or account is None or now is None:
            result.error = f"no {', '.join(missing)} given for this test or its file"
            return result
        try:
            cf = self.flows.get(flow_ref, path.parent)
        except ConfigError as exc:
            result.error = f"flow {flow_ref!r} does not load:\n" + str(exc)
            return result
        conv = new_conversation(cf, c.Account.model_validate(account.model_dump()), f"{test.name}")
        queue = Queue()
        if self.gate is not None:
            self.gate.start_test()
        for i, st in enumerate(test.steps):
            line = doc.line(("tests", index, "steps", i))
            try:
                conv, now, record = self._step(cf, conv, st, now, i, line, queue)
            except (ConfigError, ValueError) as exc:
                result.error = f"step {i + 1} (line {line}): {exc}"
                return result
            record.failures = check(
                st.expect, record.actions, record.intent, record.gate, conv, record.queue
            )
            result.records.append(record)
            if record.failures:
                break  # later steps would only repeat the first difference
        return result

    def _step(
        self,
        cf: CompiledFlow,
        conv: c.Conversation,
        st: Step,
        now: datetime,
        index: int,
        line: int | None,
        queue: Queue,
    ) -> tuple[c.Conversation, datetime, StepRecord]:
        zone = ZoneInfo(cf.flow.spec.settings.timezone)
        if st.wait is not None:
            until = now + st.wait
            label = f"{format_duration(st.wait)} pass"
            if self.gate is None:
                actions: list[c.AnyAction] = []
                for _, _, after, acts in run_until(cf, conv, until):
                    conv = after
                    actions += acts
                record = StepRecord(index, line, now, label, None, conv.state, actions)
                return conv, until, record
            # Held messages come due and timers fire, each at its own time, as in the service.
            conv, moves = advance(self.gate, cf, conv, now, until, queue)
            record = StepRecord(
                index, line, now, label, None, conv.state, moves.actions, gate=moves.notes
            )
            record.queue = QueueView.of(queue, moves, zone)
            return conv, until, record
        if st.plan is not None:
            # A person's edit at the console, not a flow step (bot.desk.effects.apply_desk).
            conv = conv.model_copy(update={"plan": tuple(st.plan)})
            label = f"agent records a plan of {len(st.plan)} instalment(s)"
            return conv, now, StepRecord(index, line, now, label, None, conv.state, [])
        event = self._event(cf, conv, st, now)
        conv, actions = step(cf, conv, event, now)
        intent = conv.last_intent if isinstance(event, c.Reply) else None
        record = StepRecord(index, line, now, c.event_label(event), intent, conv.state, actions)
        if self.gate is not None:
            answers = "inbound" if st.say is not None else "payment" if st.pay else None
            moves = Moves()
            judge(self.gate, cf, conv, actions, answers, now, queue, moves)
            record.gate = moves.notes
            record.queue = QueueView.of(queue, moves, zone)
        return conv, now, record

    def _event(self, cf: CompiledFlow, conv: c.Conversation, st: Step, now: datetime) -> c.AnyEvent:
        if st.say is not None:
            return self._reply(cf, st, st.say, now)
        if st.pay is not None:
            return c.Payment(amount=st.pay)
        if st.agent == AgentAction.PROMISED:
            agreed = st.promise
            kept = (agreed.date, agreed.amount) if agreed else c.given_back_promise(conv)
            if kept is None or kept[0] is None:
                raise ValueError("agent: promised needs `promise: {date: …}`, a plan or a promise")
            return c.Agent(action=st.agent, promise_date=kept[0], promise_amount=kept[1])
        if st.agent is not None:
            return c.Agent(action=st.agent)
        if st.delivery_failed is not None:
            return c.DeliveryFailed(reason=st.delivery_failed)
        return c.Start()

    def _reply(self, cf: CompiledFlow, st: Step, text: str, now: datetime) -> c.Reply:
        if st.intent is None:
            nlu = self.understand(text, now, cf.flow.spec.settings.timezone)
            return nlu.model_copy(update={"entities": st.entities}) if st.entities else nlu
        # A pinned intent skips the NLU altogether: the test is about the flow, not the model.
        pinned = [st.intent] if isinstance(st.intent, str) else st.intent
        return c.Reply(
            text=text,
            intents=tuple(c.ScoredIntent(name=n) for n in pinned),
            entities=st.entities or c.ReplyEntities(),
        )


# --- expectations ----------------------------------------------------------------------------


def _sends(actions: Iterable[c.AnyAction]) -> list[c.Send]:
    return [a for a in actions if isinstance(a, c.Send)]


# --- reporting -------------------------------------------------------------------------------


def transcript(records: Sequence[StepRecord]) -> list[str]:
    lines = []
    for r in records:
        arrow = f" ({r.intent})" if r.intent else ""
        lines.append(f"[{r.at:%m-%d %H:%M}] {r.label}{arrow} → {r.state}")
        verdicts = iter(r.gate)
        for a in r.actions:
            match a:
                case c.Send():
                    lines.append(f"    sent {a.template}: {a.text}")
                    verdict = next(verdicts, None)
                    if verdict is not None and verdict != "send":
                        lines.append(f"      gate: {verdict}")
                case c.Handoff():
                    lines.append(f"    handoff: {a.reason} ({a.priority})")
                case c.Blocked():
                    lines.append(f"    BLOCKED {a.template}: {a.reason}")
                case c.Close():
                    lines.append(f"    closed: {a.reason}")
    return lines


def report(result: TestResult) -> str:
    where = f"{result.file}:{result.line}" if result.line else result.file
    if result.passed:
        return f"ok   {where} {result.name}"
    out = [f"FAIL {where} {result.name}"]
    if result.error:
        out.append(f"  {result.error}")
    out.append("  transcript:")
    out += [f"    {line}" for line in transcript(result.records)]
    for r in result.records:
        if r.failures:
            out.append(f"  step {r.index + 1} (line {r.line}) expected differently:")
            out += ["    " + line for f in r.failures for line in f.splitlines()]
    return "\n".join(out)


def collect(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.yaml")) if p.is_dir() else [p]
    return files


def run_paths(
    paths: Sequence[Path],
    runner: Runner,
    emit: Callable[[str], None] = print,
) -> tuple[int, int, list[Problem]]:
    """Run every test in ``paths``; returns (passed, failed, problems of unreadable files)."""
    passed = failed = 0
    problems: list[Problem] = []
    for path in collect(paths):
        try:
            results = runner.run_file(path)
        except ConfigError as exc:
            problems += exc.problems
            continue
        for result in results:
            emit(report(result))
            passed += result.passed
            failed += not result.passed
    return passed, failed, problems

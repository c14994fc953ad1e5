"""The flow validator: structure, graph, collections safety and template checks.

Every check returns :class:`Problem`s naming file, line, field and a hint. A flow with problems
is never loaded (see :mod:`dialogs.registry`); ``smsbot flows validate`` prints them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from common.errors import Problem
from common.yamlio import YamlPath
from dialogs.availability import availability_problems
from dialogs.dispatch import INTENT_TRIGGERS, RuleRef, all_rules, all_triggers, candidates, handler
from dialogs.dispatch import is_handled as handled
from dialogs.flow import Flow
from dialogs.schema import ActionSpec, Flag, FlowSpec, Owner, Rule
from dialogs.template_checks import template_problems
from policy.rulebook import ContentPolicy, default_policy

PAUSING_INTENTS = ("dispute", "hardship")


def _close(word: str, options: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean {match[0]!r}?" if match else None


def validate_flow(flow: Flow, policy: ContentPolicy | None = None) -> list[Problem]:
    """All problems of a shape-valid flow; an empty list means it may be loaded. Templates are
    checked against ``policy`` (the gate's; default: the shipped ``config/compliance.yaml``)."""
    v = _Validator(flow, policy or default_policy())
    v.structure()
    resolved = not v.problems  # the graph checks assume every name resolves
    if resolved:
        v.graph()
        v.safety()
    v.templates()
    if resolved:
        v.availability()
    return v.problems


def validate_migration(old: Flow, new: Flow) -> list[Problem]:
    """A new version must say where conversations in its removed states go."""
    problems: list[Problem] = []
    for state in old.spec.states:
        if state in new.spec.states or state in new.spec.migrations:
            continue
        problems.append(
            new.problem(
                ("states",),
                f"state {state!r} of the running version {old.version} is gone; conversations "
                "waiting there would be stranded",
                f"add `migrations: {{{state}: <state>}}` naming where they continue",
            )
        )
    return problems


@dataclass(frozen=True)
class _Send:
    template: str
    path: YamlPath


def _sends(actions: list[ActionSpec], base: YamlPath) -> Iterator[_Send]:
    for i, a in enumerate(actions):
        if a.send is not None:
            yield _Send(a.send, (*base, i, "send"))


def _sets(actions: Iterable[ActionSpec], flag: Flag) -> bool:
    return any(a.set_flag == flag for a in actions)


class _Validator:
    def __init__(self, flow: Flow, policy: ContentPolicy) -> None:
        self.flow = flow
        self.policy = policy
        self.spec: FlowSpec = flow.spec
        self.problems: list[Problem] = []

    def err(self, path: YamlPath, message: str, hint: str | None = None) -> None:
        self.problems.append(self.flow.problem(path, message, hint))

    # -- structure -------------------------------------------------------------------------

    def structure(self) -> None:
        spec, states = self.spec, self.spec.states
        if spec.initial not in states:
            self.err(
                ("initial",),
                f"initial state {spec.initial!r} is not defined",
                _close(spec.initial, states),
            )
        for old, new in spec.migrations.items():
            if new not in states:
                self.err(
                    ("migrations", old),
                    f"migration target {new!r} is not a state",
                    _close(new, states),
                )
        scheduled = {
            a.schedule.timer
            for _, actions in self._action_lists()
            for a in actions
            if a.schedule is not None
        }
        for ref in all_rules(spec):
            self._rule_structure(ref, scheduled)
        for path, actions in self._action_lists():
            for i, a in enumerate(actions):
                self._action_structure(a, (*path, i), scheduled)
        for name, st in states.items():
            if st.terminal and (st.rules or st.timeout is not None):
                self.err(
                    ("states", name),
                    f"terminal state {name!r} has rules or a timeout",
                    "terminal states end the conversation; remove `terminal` or the rules",
                )
            has_timeout_rule = any(r.when == "timeout" for r in st.rules)
            if has_timeout_rule and st.timeout is None:
                self.err(
                    ("states", name, "rules"),
                    f"state {name!r} answers `timeout` but declares no `timeout:`",
                    "add e.g. `timeout: {after: 2d}`",
                )

    def _rule_structure(self, ref: RuleRef, scheduled: set[str]) -> None:
        rule, path = ref.rule, ref.path
        if rule.to is not None and rule.to not in self.spec.states:
            self.err(
                (*path, "to"),
                f"target state {rule.to!r} is not defined",
                _close(rule.to, self.spec.states),
            )
        if rule.always and not ref.is_global:
            self.err(
                (*path, "always"),
                "`always` only means something in global_rules",
                "a state's own rules already come before the global ones",
            )
        if rule.when == "timeout" and rule.to is None:
            self.err(
                (*path, "to"),
                "a `timeout` rule must name a state (`to:`)",
                "the timeout is re-armed on entering a state; use the same state to repeat",
            )
        for i, a in enumerate(rule.do):
            if a.next_instalment and not (rule.if_ is not None and rule.if_.plan_remaining):
                self.err(
                    (*path, "do", i, "next_instalment"),
                    "`next_instalment` needs a further instalment, which this rule does not "
                    "make sure of",
                    "add `plan_remaining: true` to the rule's `if:`",
                )
        timer = rule.when.removeprefix("timer:")
        if rule.when.startswith("timer:") and timer not in scheduled:
            self.err(
                (*path, "when"),
                f"timer {timer!r} is never scheduled",
                _close(timer, scheduled) or "add `schedule: {timer: ..., after: ...}`",
            )

    def _action_structure(self, a: ActionSpec, path: YamlPath, scheduled: set[str]) -> None:
        if a.send is not None and a.send not in self.flow.templates:
            self.err(
                (*path, "send"),
                f"template {a.send!r} is not defined",
                _close(a.send, self.flow.templates) or "define it in a template file",
            )
        if a.cancel is not None and a.cancel != "all" and a.cancel not in scheduled:
            self.err(
                (*path, "cancel"),
                f"timer {a.cancel!r} is never scheduled",
                _close(a.cancel, scheduled),
            )
        if a.next_instalment and path[0] == "states" and path[2] == "entry":
            self.err(
                (*path, "next_instalment"),
                "`next_instalment` in entry actions: nothing makes sure a further instalment "
                "is there",
                "move it to a rule with `if: {plan_remaining: true}`",
            )
        if a.schedule is not None and a.schedule.timer == "timeout":
            self.err(
                (*path, "schedule", "timer"),
                "`timeout` is the state timeout's timer",
                "declare `timeout:` on the state, or pick another timer name",
            )

    def _action_lists(self) -> Iterator[tuple[YamlPath, list[ActionSpec]]]:
        """Every ``do:`` and ``entry:`` list in the flow."""
        for ref in all_rules(self.spec):
            yield (*ref.path, "do"), ref.rule.do
        for name, st in self.spec.states.items():
            yield ("states", name, "entry"), st.entry

    # -- graph -----------------------------------------------------------------------------

    def _edges(self, state: str) -> Iterator[tuple[str, RuleRef]]:
        for trigger in all_triggers(self.spec):
            for ref in candidates(self.spec, state, trigger):
                yield trigger, ref

    def _reachable(self, start: str, skip: tuple[str, ...] = ()) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for trigger, ref in self._edges(todo.pop()):
                if trigger in skip:
                    continue
                if ref.rule.to is not None and ref.rule.to not in seen:
                    seen.add(ref.rule.to)
                    todo.append(ref.rule.to)
        return seen

    def graph(self) -> None:
        spec = self.spec
        reachable = self._reachable(spec.initial)
        for name, st in spec.states.items():
            where = ("states", name)
            if name not in reachable:
                self.err(
                    where,
                    f"state {name!r} is unreachable from {spec.initial!r}",
                    "add a rule leading to it, or delete it",
                )
                continue
            if st.terminal:
                continue
            # Every state can end through stop or wrong number; that is the borrower's way out,
            # not the flow's, so it does not count.
            ends = self._reachable(name, skip=("intent:stop", "intent:wrong_number"))
            if not any(spec.states[s].terminal for s in ends):
                self.err(
                    where,
                    f"dead end: apart from stop and wrong number, nothing leads from {name!r} "
                    "to an end",
                    "add a way out, e.g. a handoff to a human or a close",
                )
            if not handled(spec, name, "start") and name == spec.initial:
                self.err(
                    where,
                    f"initial state {name!r} does not answer `start`",
                    "add a rule `when: start` that sends the first message",
                )
            if name != spec.initial and st.owner == Owner.BOT:
                if st.timeout is None:
                    self.err(
                        where,
                        f"waiting state {name!r} has no timeout",
                        "add `timeout: {after: 2d}` and a `when: timeout` rule, or "
                        "`owner: agent` if a human owns it",
                    )
                elif not handled(spec, name, "timeout"):
                    self.err(
                        (*where, "timeout"),
                        f"the timeout of {name!r} has no rule",
                        "add a rule `when: timeout` without `if:`",
                    )
            missing = [
                t.removeprefix("intent:") for t in INTENT_TRIGGERS if not handled(spec, name, t)
            ]
            if missing:
                self.err(
                    where,
                    f"state {name!r} has no handler for intent(s) {', '.join(missing)}",
                    "add rules in the state or in global_rules (or `when: intent:*`); "
                    "the last one for each intent must have no `if:`",
                )

    # -- collections safety ----------------------------------------------------------------

    def safety(self) -> None:
        reports: dict[tuple[YamlPath, str, str], list[str]] = {}
        for name, st in self.spec.states.items():
            if st.terminal:
                continue
            for intent in ("stop", "wrong_number", *PAUSING_INTENTS):
                for ref in handler(self.spec, name, f"intent:{intent}"):
                    for message, hint in self._unsafe(name, intent, ref.rule):
                        reports.setdefault((ref.path, message, hint), []).append(name)
            if st.owner == Owner.AGENT:
                self._agent_state(name)
        for (path, message, hint), states in reports.items():
            self.err(path, f"{message} (in state {', '.join(states)})", hint)

    def _debt_sends(self, actions: Iterable[_Send]) -> list[str]:
        return [
            s.template
            for s in actions
            if s.template in self.flow.templates and self.flow.templates[s.template].debt_content
        ]

    def _unsafe(self, state: str, intent: str, rule: Rule) -> Iterator[tuple[str, str]]:
        target = self.spec.states[rule.to] if rule.to else None
        entered = target.entry if target is not None and rule.to != state else []
        actions = [*rule.do, *entered]
        sends = [*_sends(rule.do, ()), *_sends(entered, ())]
        if intent in ("stop", "wrong_number"):
            flag = Flag.OPTED_OUT if intent == "stop" else Flag.WRONG_NUMBER
            what = "an opted-out state" if intent == "stop" else "a terminal state"
            if target is None or not target.terminal:
                yield (
                    f"`{intent}` must lead to {what}; this rule goes to "
                    f"{rule.to or 'the same state'!r}",
                    f"send `{intent}` to a terminal state (`terminal: true`) so nothing follows",
                )
            if not _sets(actions, flag):
                yield (
                    f"`{intent}` must set the `{flag.value}` flag",
                    f"add `- set_flag: {flag.value}` to the rule",
                )
            if len(sends) > 1:
                yield (
                    f"`{intent}` may send at most one confirmation; this sends "
                    f"{', '.join(s.template for s in sends)}",
                    "keep one template",
                )
            debt = self._debt_sends(sends)
            if debt:
                yield (
                    f"`{intent}` answers with debt content ({', '.join(debt)})",
                    "use a template with `debt_content: false`: no amount, name, 逾期/欠款/"
                    "还款/借款",
                )
            return
        ends_in = rule.to or state
        if self.spec.states[ends_in].owner != Owner.AGENT:
            yield (
                f"`{intent}` must pause collection and hand off to a human; this rule "
                f"stays with the bot in {ends_in!r}",
                "go to a state with `owner: agent`",
            )
        if self.spec.states[state].owner == Owner.BOT:
            if not any(a.handoff is not None for a in actions):
                yield (
                    f"`{intent}` must hand off to a human",
                    "add `- handoff: {reason: " + intent + ", priority: high}`",
                )
            if not _sets(actions, Flag.PAUSED):
                yield (f"`{intent}` must pause collection", "add `- set_flag: paused`")

    def _agent_state(self, name: str) -> None:
        """A human owns the conversation: the bot adds no debt content of its own."""
        st = self.spec.states[name]
        for s in _sends(st.entry, ("states", name, "entry")):
            if self._debt_sends([s]):
                self.err(
                    s.path,
                    f"state {name!r} is owned by an agent but its entry sends debt content "
                    f"({s.template})",
                    "let the agent talk",
                )
        found: dict[_Send, list[str]] = {}
        for trigger in all_triggers(self.spec):
            for ref in handler(self.spec, name, trigger):
                if self.spec.states[ref.rule.to or name].owner != Owner.AGENT:
                    continue
                if ref.rule.always:
                    # The flow's safety answers (a stop, a wrong number, a dispute): the
                    # borrower gets them whoever owns the case, and the owner is told.
                    continue
                for s in _sends(ref.rule.do, (*ref.path, "do")):
                    if self._debt_sends([s]):
                        found.setdefault(s, []).append(trigger)
        for s, triggers in found.items():
            self.err(
                s.path,
                f"in agent-owned state {name!r}, {', '.join(triggers)} would send debt content "
                f"({s.template})",
                "override it in the state, e.g. `when: intent:*` with `notify_agent`",
            )

    # -- templates -------------------------------------------------------------------------

    def templates(self) -> None:
        self.problems += template_problems(self.flow, self.policy)

    # -- variable availability -------------------------------------------------------------

    def availability(self) -> None:
        self.problems += availability_problems(self.flow, self._edges)

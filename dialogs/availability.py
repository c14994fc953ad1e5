"""Variable availability: every variable a template uses has a value wherever it is sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from common.errors import Problem
from common.yamlio import YamlPath
from dialogs.dispatch import RuleRef
from dialogs.flow import Flow
from dialogs.schema import ActionSpec, Rule
from dialogs.templates import ALWAYS_AVAILABLE, VARIABLES, parse

Edges = Callable[[str], Iterator[tuple[str, RuleRef]]]  # a state's (trigger, rule) pairs


def availability_problems(flow: Flow, edges: Edges) -> list[Problem]:
    """Every variable a template uses has a value wherever it is sent.

    Promise and payment variables exist only after a promise was recorded (with the date
    or amount its rule's `if:` guarantees) or a payment arrived, on *every* path: a
    must-analysis over the state graph, iterated to a fixed point.
    """
    spec = flow.spec
    problems: list[Problem] = []

    def err(path: YamlPath, message: str, hint: str) -> None:
        problems.append(flow.problem(path, message, hint))

    entry: dict[str, frozenset[str]] = {s: frozenset(VARIABLES) for s in spec.states}
    entry[spec.initial] = ALWAYS_AVAILABLE
    uses: list[_Use] = []
    changed = True
    while changed:
        changed = False
        uses.clear()
        for state, st in spec.states.items():
            for trigger, ref in edges(state):
                have = entry[state] | ({"paid_amount"} if trigger == "payment" else set())
                have = _flow_through(ref.rule, ref.rule.do, have, (*ref.path, "do"), uses)
                target = ref.rule.to
                if target is not None and entry[target] & have != entry[target]:
                    entry[target] &= have
                    changed = True
            if st.timeout is not None and st.timeout.on_date:
                uses.append(_Use(("states", state, "timeout"), None, entry[state]))
            _flow_through(None, st.entry, entry[state], ("states", state, "entry"), uses)
    for use in uses:
        if use.template is None:
            if "promised_date" not in use.have:
                err(
                    use.path,
                    "timer on `promised_date`, but no promised date is certain here",
                    "record a promise with `if: {entity: date}` on every way here first",
                )
            continue
        tpl = flow.templates.get(use.template)
        needed = parse(tpl.text).variables if tpl is not None else []
        lacking = [v for v in needed if v in VARIABLES and v not in use.have]
        if lacking:
            err(
                use.path,
                f"template {use.template!r} uses "
                f"{', '.join('{' + v + '}' for v in lacking)}, which may have no value "
                "here",
                "record the promise (with `if: {entity: date}` / amount) or the "
                "payment on every path to this point, or use another template",
            )
    return problems


@dataclass(frozen=True)
class _Use:
    """A place that needs variables: a send (template) or a timer on the promised date (None)."""

    path: YamlPath
    template: str | None
    have: frozenset[str]


def _flow_through(
    rule: Rule | None,
    actions: list[ActionSpec],
    have: frozenset[str] | set[str],
    base: YamlPath,
    uses: list[_Use],
) -> frozenset[str]:
    """Variables available after ``actions`` run, recording what each send needs on the way."""
    facts = set(have)
    if rule is not None and rule.if_ is not None and rule.if_.instalment:
        # The promise is a plan's instalment, which always has its day and amount.
        facts |= {"promised_date", "promised_amount"}
    if rule is not None and rule.if_ is not None and rule.if_.promise_has_amount:
        facts.add("promised_amount")
    for i, a in enumerate(actions):
        if a.record_promise:
            # A promise is replaced as a whole: only what this rule's `if:` guarantees is sure.
            sure = rule.if_.guaranteed_entities if rule is not None and rule.if_ else set()
            is_reply = rule is not None and rule.when.startswith("intent:")
            facts -= {"promised_date", "promised_amount"}
            facts |= {f"promised_{e}" for e in ("date", "amount") if is_reply and e in sure}
            if rule is not None and rule.when == "agent:promised":
                # A person's promise always names its day (dialogs.conversation.Agent).
                facts.add("promised_date")
        if a.next_instalment:
            # An instalment always has its day and amount (dialogs.conversation.Instalment).
            facts |= {"promised_date", "promised_amount"}
        if a.send is not None:
            uses.append(_Use((*base, i, "send"), a.send, frozenset(facts)))
        if a.schedule is not None and a.schedule.on_date:
            uses.append(_Use((*base, i, "schedule"), None, frozenset(facts)))
    return frozenset(facts)

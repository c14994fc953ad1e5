"""Which rules answer an event in a state, in order. The one place this order is defined.

Both the machine (which fires the rules) and the validator (which proves them safe) read it from
here, so what is checked is exactly what runs.

For an event in a non-terminal state, the candidates are, first match wins:

1. global rules marked ``always: true`` for this event (then for ``intent:*``);
2. the state's own rules for this event;
3. the state's own ``intent:*`` rules (replies only);
4. the other global rules for this event;
5. the other global ``intent:*`` rules (replies only).

A terminal state answers only the global ``always: true`` rules, and without leaving it: a
closed case still honours a stop (the number reaches the suppression list, the confirmation
goes out), a wrong number, a dispute — whatever state the conversation ended in. Nothing else
happens after the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.yamlio import YamlPath
from dialogs.schema import AgentAction, FlowSpec, Rule
from intents.model import INTENT_NAMES

FIXED_TRIGGERS = (
    "start",
    "timeout",
    "payment",
    "delivery_failed",
    *(f"agent:{a.value}" for a in AgentAction),
)
INTENT_TRIGGERS = tuple(f"intent:{name}" for name in INTENT_NAMES)


@dataclass(frozen=True)
class RuleRef:
    rule: Rule
    path: YamlPath  # ("states", name, "rules", i) or ("global_rules", i)

    @property
    def is_global(self) -> bool:
        return self.path[0] == "global_rules"


def all_rules(spec: FlowSpec) -> list[RuleRef]:
    out = [RuleRef(r, ("global_rules", i)) for i, r in enumerate(spec.global_rules)]
    for name, state in spec.states.items():
        out += [RuleRef(r, ("states", name, "rules", i)) for i, r in enumerate(state.rules)]
    return out


def all_triggers(spec: FlowSpec) -> list[str]:
    """Every event the machine must know: fixed ones, one per intent, one per named timer."""
    timers = sorted({r.rule.when for r in all_rules(spec) if r.rule.when.startswith("timer:")})
    return [*FIXED_TRIGGERS, *INTENT_TRIGGERS, *timers]


def candidates(spec: FlowSpec, state: str, trigger: str) -> list[RuleRef]:
    st = spec.states[state]
    globals_ = [RuleRef(r, ("global_rules", i)) for i, r in enumerate(spec.global_rules)]
    own = [RuleRef(r, ("states", state, "rules", i)) for i, r in enumerate(st.rules)]
    keys = [trigger, "intent:*"] if trigger.startswith("intent:") else [trigger]

    def pick(refs: list[RuleRef], key: str, always: bool | None = None) -> list[RuleRef]:
        return [
            r for r in refs if r.rule.when == key and (always is None or r.rule.always == always)
        ]

    out: list[RuleRef] = []
    for key in keys:
        out += pick(globals_, key, always=True)
    if st.terminal:
        return out
    for key in keys:
        out += pick(own, key)
    for key in keys:
        out += pick(globals_, key, always=False)
    return out


def handler(spec: FlowSpec, state: str, trigger: str) -> list[RuleRef]:
    """The candidates that can actually fire: up to and including the first unconditional one."""
    out: list[RuleRef] = []
    for ref in candidates(spec, state, trigger):
        out.append(ref)
        if not ref.rule.conditional:
            break
    return out


def is_handled(spec: FlowSpec, state: str, trigger: str) -> bool:
    """True if some rule always answers the event (the last candidate has no condition)."""
    found = handler(spec, state, trigger)
    return bool(found) and not found[-1].rule.conditional

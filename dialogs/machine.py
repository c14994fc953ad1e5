"""The only module that talks to ``transitions``.

One :class:`FlowMachine` is built per flow version at load time. It holds no conversation: each
step fires an event on a short-lived plain model object (the engine's working copy), so
conversations stay plain data and a machine can serve every conversation of its version.
Each hook is exactly one callable; we use the synchronous ``Machine`` (``AsyncMachine`` would run
callback lists concurrently, and ordering of actions matters).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from transitions import Machine
from transitions import State as _TState

from dialogs.dispatch import RuleRef, all_triggers, candidates
from dialogs.schema import FlowSpec

# transitions logs every transition at INFO; a busy service would drown its own logs.
logging.getLogger("transitions").setLevel(logging.WARNING)


class Interpreter(Protocol):
    """What the machine needs from the model object it fires events on."""

    state: str

    def check(self, ref: RuleRef) -> bool: ...

    def run_rule(self, ref: RuleRef) -> None: ...

    def enter(self, state: str) -> None: ...


def _check(ref: RuleRef) -> Any:
    return lambda ev: ev.model.check(ref)


def _run(ref: RuleRef) -> Any:
    return lambda ev: ev.model.run_rule(ref)


def _enter(state: str) -> Any:
    return lambda ev: ev.model.enter(state)


class FlowMachine:
    """A compiled flow: states, and per (state, event) the ordered rules of :mod:`dispatch`."""

    def __init__(self, spec: FlowSpec) -> None:
        states = [_TState(name, on_enter=[_enter(name)]) for name in spec.states]
        self._machine = Machine(
            model=None,
            states=states,
            initial=spec.initial,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=True,
        )
        for trigger in all_triggers(spec):
            for state, st in spec.states.items():
                for ref in candidates(spec, state, trigger):
                    self._machine.add_transition(
                        trigger,
                        source=state,
                        # None: an internal rule, no exit/entry. A terminal state is never
                        # left: its `always` rules act there (dialogs.dispatch).
                        dest=None if st.terminal else ref.rule.to,
                        conditions=[_check(ref)] if ref.rule.conditional else None,
                        # `before` runs ahead of the state change, so a rule's own actions
                        # (record the promise) happen before the new state's entry actions
                        # (which may quote it).
                        before=[_run(ref)],
                    )

    def fire(self, model: Interpreter, trigger: str) -> bool:
        """Fire ``trigger`` on ``model``; False if no rule answered it in the model's state."""
        event = self._machine.events.get(trigger)
        if event is None or not event.transitions.get(model.state):
            return False
        return bool(event.trigger(model))

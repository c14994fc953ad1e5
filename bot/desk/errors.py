"""The desk's refusals, in the project's one error hierarchy (``common.errors``)."""

from __future__ import annotations

from common.errors import PermissionDenied, SmsbotError

__all__ = [
    "CaseConflict",
    "CaseHeld",
    "CaseNotFound",
    "InvalidRequest",
    "PermissionDenied",
    "UnmatchedGone",
]


class CaseNotFound(SmsbotError):
    """No open case with that id on that account (resolved meanwhile, or never)."""


class CaseHeld(SmsbotError):
    """Another agent holds the case; ``holder`` names them (the console shows who)."""

    def __init__(self, case_id: str, holder: str) -> None:
        self.case_id = case_id
        self.holder = holder
        super().__init__(f"case {case_id} is held by {holder}")


class CaseConflict(SmsbotError):
    """The case is not in a state that allows this (e.g. releasing a case nobody holds)."""


class UnmatchedGone(SmsbotError):
    """The unmatched message was linked or dismissed already (by someone else)."""


class InvalidRequest(SmsbotError):
    """The console asked something malformed (no agent name, an unknown state, no date)."""

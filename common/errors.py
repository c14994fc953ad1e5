"""The project's one error hierarchy.

Every error we raise on purpose derives from :class:`SmsbotError`, so callers (the CLI, the
web layer) can turn any of them into a clear message without catching unrelated bugs.
"""

from __future__ import annotations

from dataclasses import dataclass


class SmsbotError(Exception):
    """Base of every error smsbot raises deliberately."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an operator-edited file, addressed as ``file:line: field: message``."""

    file: str
    line: int | None
    message: str
    field: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(SmsbotError):
    """An operator-edited file (YAML data, flows, templates, policy) is invalid."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(SmsbotError):
    """A command was called wrongly (bad flag value, missing argument)."""


class PermissionDenied(SmsbotError):
    """The caller's role may not do this (e.g. only a supervisor reassigns a case)."""

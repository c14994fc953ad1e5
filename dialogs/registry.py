"""Loaded flows by name: validated, compiled once per version, reloaded atomically.

A flow file that fails to load or validate never replaces the version already running, and a
new version is refused if conversations in one of the running version's states would have
nowhere to go (see ``migrations:``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from common.errors import ConfigError, Problem, SmsbotError
from dialogs.engine import CompiledFlow, compile_flow
from dialogs.flow import Flow, load_flow
from dialogs.validate import validate_flow, validate_migration
from policy.rulebook import ContentPolicy

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_FLOWS = PACKAGE_DIR / "flows"
DEFAULT_TESTS = PACKAGE_DIR / "tests"


def check_flow(
    path: Path, previous: Flow | None = None, policy: ContentPolicy | None = None
) -> tuple[Flow | None, list[Problem]]:
    """Load and validate one flow file (against the running version, if any; templates against
    ``policy``, the gate's content rules, by default the shipped ones)."""
    try:
        flow = load_flow(path)
    except ConfigError as exc:
        return None, exc.problems
    problems = validate_flow(flow, policy)
    if previous is not None and previous.version != flow.version:
        problems += validate_migration(previous, flow)
    return flow, problems


class Registry:
    def __init__(
        self, directory: Path = DEFAULT_FLOWS, policy: ContentPolicy | None = None
    ) -> None:
        self.directory = directory
        self.policy = policy
        self._flows: dict[str, CompiledFlow] = {}
        self._lock = threading.Lock()  # one reload at a time; readers never wait

    @classmethod
    def load(cls, directory: Path = DEFAULT_FLOWS, policy: ContentPolicy | None = None) -> Registry:
        """Load every flow of ``directory``; any problem is fatal at start-up. ``policy`` is the
        gate's content policy (default: the shipped rule packs)."""
        registry = cls(directory, policy)
        problems = registry.reload()
        if problems:
            raise ConfigError(problems)
        if not registry._flows:
            raise ConfigError([Problem(str(directory), None, "no flow files (*.yaml) found")])
        return registry

    def reload(self, vet: Callable[[Flow], list[Problem]] | None = None) -> list[Problem]:
        """Re-read the directory. Valid new versions replace old ones; the rest stay as they were.

        ``vet`` asks what the caller needs of a new version besides validity (the service: an
        approved template code for every carrier in use); a version it objects to is kept out.
        Returns the problems of the files that were kept out.
        """
        with self._lock:
            current = self._flows
            fresh: dict[str, CompiledFlow] = {}
            seen: dict[str, Path] = {}
            problems: list[Problem] = []
            for path in sorted(self.directory.glob("*.yaml")):
                flow, found = check_flow(path, policy=self.policy)
                if flow is not None:
                    if flow.name in seen:
                        found.append(
                            flow.problem(
                                ("flow",),
                                f"flow {flow.name!r} is also defined in {seen[flow.name]}",
                                "flow names are unique",
                            )
                        )
                    seen[flow.name] = path
                    running = current.get(flow.name)
                    if running is not None and running.version != flow.version:
                        found += validate_migration(running.flow, flow)
                    if vet is not None and not found:
                        found += vet(flow)
                if found or flow is None:
                    problems += found
                    continue
                running = current.get(flow.name)
                same = running is not None and running.version == flow.version
                fresh[flow.name] = running if same and running else compile_flow(flow)
            # One assignment: readers see the old set or the new one, never a mixture.
            self._flows = {**current, **fresh}
            return problems

    def get(self, name: str) -> CompiledFlow:
        try:
            return self._flows[name]
        except KeyError:
            known = ", ".join(sorted(self._flows)) or "none"
            raise SmsbotError(f"no flow named {name!r} (loaded: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._flows)

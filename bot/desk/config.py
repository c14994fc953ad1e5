"""``config/desk.yaml``: SLA minutes per handoff reason, validated with file, line and field.

Loaded at start (a bad file stops the start, naming the problem) and again on every reload
(``bot.reload``): a file with a problem is refused and the running settings stay, as for the
compliance rule packs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import ConfigError, Problem
from common.yamlio import load_yaml, validation_problems

DEFAULT_FILE = Path(__file__).resolve().parent.parent.parent / "config" / "desk.yaml"
REASON = r"^[a-z][a-z0-9_]*$"  # as the flows write handoff reasons


class DeskConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # A week at most: an SLA longer than that is a typo (minutes for hours), not a choice.
    default_sla_minutes: int = Field(default=240, ge=1, le=7 * 24 * 60)
    sla_minutes: dict[str, int] = Field(default_factory=dict)
    notify_supervisors_on_expiry: bool = True
    # What the console's composer starts from, per compliance pack: the signature, creditor
    # and hotline every message must carry (the gate refuses one without them).
    composer_starter: dict[str, str] = Field(default_factory=dict)

    def model_post_init(self, _: object) -> None:
        for reason, minutes in self.sla_minutes.items():
            if not _valid_reason(reason):
                raise ValueError(f"sla_minutes: {reason!r} is not a handoff reason name")
            if not 1 <= minutes <= 7 * 24 * 60:
                raise ValueError(f"sla_minutes.{reason}: {minutes} is not 1..10080 minutes")
        for pack, text in self.composer_starter.items():
            if len(text) > 500:
                raise ValueError(f"composer_starter.{pack}: longer than a message (500)")

    def sla(self, reason: str) -> timedelta:
        return timedelta(minutes=self.sla_minutes.get(reason, self.default_sla_minutes))

    def due(self, reason: str, opened_at: datetime) -> datetime:
        return opened_at + self.sla(reason)


def _valid_reason(name: str) -> bool:
    import re

    return re.match(REASON, name) is not None


def load_desk_config(path: Path = DEFAULT_FILE) -> DeskConfig:
    """The file's settings; :class:`ConfigError` naming file, line and field otherwise. A
    missing file gives the defaults (the queue still works; every SLA is the default)."""
    if not path.exists():
        return DeskConfig()
    doc = load_yaml(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), doc.line(()), "expected a mapping of settings")])
    for reason, minutes in (data.get("sla_minutes") or {}).items():
        if not isinstance(reason, str) or not _valid_reason(reason):
            where = ("sla_minutes", reason)
            raise ConfigError([doc.problem(where, f"{reason!r} is not a handoff reason name")])
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 10080:
            where = ("sla_minutes", reason)
            raise ConfigError([doc.problem(where, f"{minutes!r} is not 1..10080 minutes")])
    try:
        return DeskConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc)) from exc


class DeskSettings:
    """The running desk configuration, replaced whole on a good reload (one attribute
    assignment: nothing reads half of each)."""

    def __init__(self, config: DeskConfig, path: Path = DEFAULT_FILE) -> None:
        self.config = config
        self.path = path

    @classmethod
    def load(cls, path: Path = DEFAULT_FILE) -> DeskSettings:
        return cls(load_desk_config(path), path)

    def reload(self) -> list[Problem]:
        """Reads the file again; its problems (the running config stays) or none."""
        try:
            fresh = load_desk_config(self.path)
        except ConfigError as exc:
            return exc.problems
        self.config = fresh
        return []

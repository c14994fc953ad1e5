"""config/desk.yaml: validated with file, line and field; the shipped file covers the shipped
flows' handoff reasons and names no other."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.desk.config import DEFAULT_FILE, DeskConfig, DeskSettings, load_desk_config
from common.errors import ConfigError
from dialogs.flow import load_flow
from tests.service.test_store_contract import T0

FLOWS = Path(__file__).resolve().parents[2] / "dialogs" / "flows"


def _reasons() -> set[str]:
    out: set[str] = set()
    for path in FLOWS.glob("*.yaml"):
        spec = load_flow(path).spec
        rules = [*spec.global_rules, *(r for st in spec.states.values() for r in st.rules)]
        actions = [a for r in rules for a in r.do]
        actions += [a for st in spec.states.values() for a in st.entry]
        out |= {a.handoff.reason for a in actions if a.handoff is not None}
    return out


def test_the_shipped_file_covers_every_handoff_reason_of_the_shipped_flows() -> None:
    config = load_desk_config(DEFAULT_FILE)
    assert set(config.sla_minutes) == _reasons()
    assert config.sla("dispute") == timedelta(minutes=60)
    assert config.due("no_such_reason", T0) == T0 + timedelta(minutes=config.default_sla_minutes)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "desk.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("default_sla_minutes: 60\nsla_minutes:\n  dispute: soon\n", ":3: sla_minutes.dispute"),
        (
            "default_sla_minutes: 60\nsla_minutes:\n  Dispute Now: 5\n",
            ":3: sla_minutes.Dispute Now",
        ),
        ("default_sla_minutes: 0\n", ":1: default_sla_minutes"),
        (
            "default_sla_minutes: 60\nnotify_supervisor: true\n",
            ":2: notify_supervisor: unknown field",
        ),
        ("sla_minutes: [dispute\n", ":2: YAML syntax error"),
    ],
)
def test_a_bad_file_names_file_line_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_desk_config(path)
    assert f"{path}{where}" in str(err.value)


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_desk_config(tmp_path / "absent.yaml") == DeskConfig()


def test_a_reload_keeps_the_last_good_settings(tmp_path: Path) -> None:
    path = _write(tmp_path, "sla_minutes:\n  dispute: 15\n")
    running = DeskSettings.load(path)
    _write(tmp_path, "sla_minutes:\n  dispute: -1\n")
    problems = running.reload()
    assert problems and "sla_minutes.dispute" in str(problems[0])
    assert running.config.sla_minutes == {"dispute": 15}
    _write(tmp_path, "sla_minutes:\n  dispute: 30\n")
    assert running.reload() == []
    assert running.config.sla_minutes == {"dispute": 30}

"""Loading a directory of flows: versions, atomic reload, migrations."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dialogs_support import ACCOUNT, FIXTURES, T0, reply

from common.errors import ConfigError, SmsbotError
from dialogs import conversation as c
from dialogs.engine import Engine, new_conversation
from dialogs.registry import Registry


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "valid.yaml", tmp_path / "minimal.yaml")
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_load_compiles_each_flow_once(flows: Path) -> None:
    registry = Registry.load(flows)
    first = registry.get("minimal")
    assert registry.names() == ["minimal"]
    assert registry.reload() == []
    assert registry.get("minimal") is first  # same version: the same machine


def test_an_invalid_edit_keeps_the_last_good_version(flows: Path) -> None:
    registry = Registry.load(flows)
    good = registry.get("minimal")
    edit(flows / "minimal.yaml", "to: opted_out", "to: waiting")
    problems = registry.reload()
    assert any("`stop` must lead to an opted-out state" in p.message for p in problems)
    assert registry.get("minimal") is good


def test_a_syntax_error_keeps_the_last_good_version(flows: Path) -> None:
    registry = Registry.load(flows)
    good = registry.get("minimal")
    (flows / "minimal.yaml").write_text("flow: [unclosed\n")
    assert registry.reload()
    assert registry.get("minimal") is good


def test_a_valid_edit_replaces_the_version(flows: Path) -> None:
    registry = Registry.load(flows)
    old = registry.get("minimal")
    edit(flows / "minimal.yaml", "{after: 2d}", "{after: 3d}")
    assert registry.reload() == []
    assert registry.get("minimal").version != old.version


def test_removing_a_state_needs_a_migration(flows: Path) -> None:
    registry = Registry.load(flows)
    old = registry.get("minimal")
    path = flows / "minimal.yaml"
    edit(path, "waiting", "pending")  # renames the state everywhere
    (problem,) = registry.reload()
    assert "state 'waiting' of the running version" in problem.message
    assert "migrations" in (problem.hint or "")
    assert registry.get("minimal") is old

    path.write_text(path.read_text() + "migrations:\n  waiting: pending\n")
    assert registry.reload() == []
    assert registry.get("minimal").version != old.version


def test_conversations_follow_the_migration(flows: Path) -> None:
    registry = Registry.load(flows)
    engine = Engine(registry)
    conv, _ = engine.step(new_conversation(registry.get("minimal"), ACCOUNT, "c1"), c.Start(), T0)
    assert conv.state == "waiting"
    path = flows / "minimal.yaml"
    edit(path, "waiting", "pending")
    path.write_text(path.read_text() + "migrations:\n  waiting: pending\n")
    assert registry.reload() == []
    conv, _ = engine.step(conv, reply("acknowledge"), T0)
    assert conv.flow_version == registry.get("minimal").version
    assert conv.state == "human"  # migrated to `pending`, then answered there


def test_load_refuses_an_invalid_directory(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "broken" / "no_timeout.yaml", tmp_path / "x.yaml")
    with pytest.raises(ConfigError, match="has no timeout"):
        Registry.load(tmp_path)
    with pytest.raises(ConfigError, match="no flow files"):
        Registry.load(tmp_path / "empty")


def test_duplicate_flow_names_are_refused(flows: Path) -> None:
    shutil.copy(flows / "minimal.yaml", flows / "other.yaml")
    registry = Registry(flows)
    problems = registry.reload()
    assert any("also defined in" in p.message for p in problems)


def test_unknown_flow_name(flows: Path) -> None:
    with pytest.raises(SmsbotError, match="no flow named 'nope'"):
        Registry.load(flows).get("nope")

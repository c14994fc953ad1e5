"""Flow diagrams."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from common.errors import SmsbotError, UsageError
from dialogs import graph
from dialogs.engine import CompiledFlow


def test_dot_marks_terminal_and_agent_states_and_draws_globals_once(
    collections: CompiledFlow,
) -> None:
    dot = graph.to_dot(collections.flow)
    assert dot.startswith('digraph "collections" {')
    assert '"opted_out" [label="opted_out\\n(terminal)", peripheries=2];' in dot
    assert "(agent)" in dot
    assert "fillcolor=lightyellow" in dot
    assert dot.count("subgraph cluster_global") == 1
    stops = [r for r in collections.flow.spec.global_rules if r.when == "intent:stop"]
    assert dot.count("intent:stop (always)") == len(stops)  # one edge per rule, not per state
    assert '__any__ -> "opted_out"' in dot
    assert "timeout promised_date+1d 10:00" in dot


def test_write_dot(collections: CompiledFlow, tmp_path: Path) -> None:
    out = tmp_path / "flow.dot"
    graph.write_graph(collections.flow, out)
    assert out.read_text(encoding="utf-8") == graph.to_dot(collections.flow)


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_render_with_dot(collections: CompiledFlow, tmp_path: Path, suffix: str) -> None:
    assert shutil.which("dot"), "Graphviz is installed by scripts/test.sh"
    out = tmp_path / f"flow.{suffix}"
    graph.write_graph(collections.flow, out)
    data = out.read_bytes()
    assert b"<svg" in data if suffix == "svg" else data.startswith(b"\x89PNG")


def test_missing_dot_is_a_clear_error(
    collections: CompiledFlow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph.shutil, "which", lambda _: None)
    with pytest.raises(SmsbotError, match="apt-get install graphviz"):
        graph.write_graph(collections.flow, tmp_path / "flow.svg")


def test_unknown_format_is_a_usage_error(collections: CompiledFlow, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.svg, \.png or \.dot"):
        graph.write_graph(collections.flow, tmp_path / "flow.pdf")

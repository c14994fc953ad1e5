"""The libraries stand on their own: ``common`` imports nothing of ours, ``policy`` only
``common``, ``intents`` and ``dialogs`` nothing of ``bot`` (the application wires them
together, e.g. the gate's reviewer for `flows test`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"bot", "common", "policy", "intents", "dialogs"}
ALLOWED = {
    "common": set(),
    "policy": {"common"},
    "intents": {"common"},
    "dialogs": {"common", "policy", "intents"},
}


def imported(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
    return out & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_library_imports_only_the_layers_below(package: str) -> None:
    wrong = {
        str(f.relative_to(ROOT)): sorted(imported(f) - ALLOWED[package] - {package})
        for f in sorted((ROOT / package).rglob("*.py"))
    }
    assert {f: w for f, w in wrong.items() if w} == {}

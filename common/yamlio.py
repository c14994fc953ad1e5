"""Line-aware YAML loading for operator-edited files.

Operators fix what the validator reports by opening the file at a line, so every value we
load remembers where it came from: :class:`Located` maps a path of keys and list indexes
(``("states", "awaiting", "rules", 2, "to")``) to the 1-based line it was written on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from common.errors import ConfigError, Problem

PathKey = str | int
YamlPath = tuple[PathKey, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans.

    YAML 1.1 reads ``on``, ``no``, ``y`` and ``N`` as booleans; in a collections flow ``N`` is an
    opt-out keyword and ``on`` a natural key, so only ``true``/``false`` are booleans here.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


@dataclass(frozen=True)
class Located:
    """A loaded YAML document and the line of every key and list item in it."""

    file: str
    data: Any
    lines: dict[YamlPath, int] = field(default_factory=dict)

    def line(self, path: Sequence[PathKey]) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def problem(self, path: Sequence[PathKey], message: str, hint: str | None = None) -> Problem:
        return Problem(self.file, self.line(path), message, dotted(path) or None, hint)


def dotted(path: Iterable[PathKey]) -> str:
    """``("states", "new", "rules", 0)`` → ``states.new.rules[0]``: how operators read a path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path, display: str | None = None) -> Located:
    """Read and parse ``path``; syntax errors and duplicate keys raise :class:`ConfigError`."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(name, None, f"cannot read file: {exc}")]) from exc
    return load_yaml_text(text, name)


def load_yaml_text(text: str, file: str) -> Located:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            [
                Problem(
                    file, line, f"YAML syntax error: {exc.problem or exc}", hint=_syntax_hint(exc)
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, f"YAML error: {exc}")]) from exc
    finally:
        loader.dispose()
    if node is None:
        return Located(file, None, {})
    lines: dict[YamlPath, int] = {(): node.start_mark.line + 1}
    problems: list[Problem] = []
    data = _convert(node, (), lines, problems, file, loader)
    if problems:
        raise ConfigError(problems)
    return Located(file, data, lines)


def _syntax_hint(exc: yaml.MarkedYAMLError) -> str:
    if "\t" in str(exc.problem or "") or "tab" in str(exc.problem or ""):
        return "indent with spaces, not tabs"
    return "check indentation and quoting on this line and the one above it"


def _convert(
    node: yaml.Node,
    path: YamlPath,
    lines: dict[YamlPath, int],
    problems: list[Problem],
    file: str,
    loader: _Loader,
) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merges into plain keys
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                key = str(key)
            line = key_node.start_mark.line + 1
            if key in out:
                first = lines.get((*path, key))
                problems.append(
                    Problem(
                        file,
                        line,
                        f"duplicate key {key!r} (first written on line {first})",
                        dotted((*path, key)),
                        "remove one of them: YAML would silently keep only the last",
                    )
                )
                continue
            lines[(*path, key)] = line
            out[key] = _convert(value_node, (*path, key), lines, problems, file, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            items.append(_convert(item, (*path, i), lines, problems, file, loader))
        return items
    return loader.construct_object(node, deep=True)


def validation_problems(err: ValidationError, doc: Located, prefix: YamlPath = ()) -> list[Problem]:
    """Turn pydantic's errors into ``file:line: field: message`` problems."""
    out: list[Problem] = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if isinstance(p, str | int))
        # pydantic adds the union member's name to a path ("function-after[...]"); drop it
        loc = tuple(p for p in loc if not (isinstance(p, str) and "[" in p))
        path = (*prefix, *loc)
        message = e["msg"].removeprefix("Value error, ")
        hint = None
        if e["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}" if loc else "unknown field"
            hint = "check the spelling; see dialogs/README.md for the allowed fields"
        elif e["type"] == "missing":
            message = "required field is missing"
        out.append(doc.problem(path, message, hint))
    return out

"""Labelled examples in operator-edited YAML: loading with line numbers, and checking."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import ConfigError, Problem
from intents.model import INTENT_NAMES, LABEL_ORDER, Intent
from intents.normalize import Normalizer


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader (it reads the 6,000 training examples in 0.4 s where the Python
    one takes 6 s), with dates left as text: pydantic then reads them per example, so an
    impossible 2026-02-30 is that example's file:line error, not a traceback of the parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LOADER: type[yaml.SafeLoader] = _Loader

DATA_DIR = Path(__file__).parent / "data"
TRAIN_DIR = DATA_DIR / "train"
HELDOUT_FILE = DATA_DIR / "heldout.yaml"
RULES_FILE = DATA_DIR / "rules.yaml"
USERDICT_FILE = DATA_DIR / "userdict.txt"


# The styles of DATA.md: how a reply is written, for per-style figures and authors' quotas.
Style = Literal[
    "standard",
    "colloquial",
    "dialect",
    "english",
    "pinyin",
    "mixed",
    "short",
    "long",
    "sarcastic",
    "implicit",
    "pasted",
    "quoting",
]


class Example(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    intents: tuple[Intent, ...] = Field(min_length=1)
    date: dt.date | None = None
    date_range: tuple[dt.date, dt.date] | None = None
    amount: float | None = None
    installments: int | None = None
    style: Style | None = None
    file: str = ""
    line: int = 0

    @field_validator("intents")
    @classmethod
    def _in_label_order(cls, v: tuple[Intent, ...]) -> tuple[Intent, ...]:
        if len(set(v)) != len(v):
            raise ValueError("an intent is listed twice")
        if Intent.UNKNOWN in v and len(v) > 1:
            raise ValueError("unknown is only ever alone")
        want = tuple(sorted(v, key=LABEL_ORDER.index))
        if v != want:
            # The first is the primary: an order of the author's taste would change it.
            raise ValueError(
                f"intents are listed in DATA.md's order: [{', '.join(i.value for i in want)}]"
            )
        return v

    @property
    def primary(self) -> Intent:
        return self.intents[0]


class HeldOut(BaseModel):
    now: dt.datetime
    tz: str = "Asia/Shanghai"
    examples: list[Example]


def _items(path: Path) -> Iterator[tuple[int, Any, dict[str, Any]]]:
    """Yields (line, item, document) for each entry of the file's ``examples`` list."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=_LOADER)
        doc = yaml.load(text, Loader=_LOADER)  # a safe loader, C or Python
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, f"cannot read: {exc}")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([Problem(str(path), line, f"invalid YAML: {exc}")]) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("examples"), list):
        raise ConfigError(
            [Problem(str(path), 1, "expected a mapping with an `examples:` list", "examples")]
        )
    assert isinstance(node, yaml.MappingNode)
    seq = next(v for k, v in node.value if k.value == "examples")
    for item_node, item in zip(seq.value, doc["examples"], strict=True):
        yield item_node.start_mark.line + 1, item, doc


def _example(path: Path, line: int, item: Any, default: Intent | None) -> Example:
    raw = {"text": item} if isinstance(item, str) else item
    if isinstance(raw, dict) and "intents" not in raw and default is not None:
        raw = {**raw, "intents": [default]}
    try:
        return Example.model_validate({**raw, "file": str(path), "line": line})
    except (ValidationError, TypeError) as exc:
        raise ConfigError([_problem(path, line, exc)]) from exc


def _problem(path: Path, line: int, exc: Exception) -> Problem:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "enum":
            msg = f"unknown intent {err['input']!r} (known: {', '.join(INTENT_NAMES)})"
        return Problem(str(path), line, msg, loc or None)
    return Problem(str(path), line, f"expected a text or a mapping with `text:` ({exc})")


def load_training(train_dir: Path = TRAIN_DIR) -> list[Example]:
    examples, problems = _load_training(train_dir)
    if problems:
        raise ConfigError(problems)
    return examples


def _load_training(train_dir: Path) -> tuple[list[Example], list[Problem]]:
    examples: list[Example] = []
    problems: list[Problem] = []
    for path in sorted(train_dir.glob("*.yml")):
        # Read by nothing: say so, or an operator's examples silently never train.
        problems.append(Problem(str(path), None, "not read: training files end in .yaml"))
    for path in sorted(train_dir.glob("*.yaml")):
        try:
            items = list(_items(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        file_intent = items[0][2].get("intent") if items else None
        default: Intent | None = None
        if file_intent is not None:
            try:
                default = Intent(file_intent)
            except ValueError:
                problems.append(Problem(str(path), 1, f"unknown intent {file_intent!r}", "intent"))
                continue
        for line, item, _ in items:
            try:
                examples.append(_example(path, line, item, default))
            except ConfigError as exc:
                problems.extend(exc.problems)
    return examples, problems


def load_heldout(path: Path = HELDOUT_FILE) -> HeldOut:
    items = list(_items(path))
    header = items[0][2] if items else {}
    problems: list[Problem] = []
    examples: list[Example] = []
    for line, item, _ in items:
        try:
            examples.append(_example(path, line, item, None))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    try:
        return HeldOut(
            now=header.get("now"), tz=header.get("tz", "Asia/Shanghai"), examples=examples
        )
    except ValidationError as exc:
        raise ConfigError([_problem(path, 1, exc)]) from exc


def check(data_dir: Path = DATA_DIR) -> list[Problem]:
    """Every problem in the data files: schema, unknown intents, duplicates, conflicting labels."""
    from intents import leakage
    from intents.rules import load_rules

    problems: list[Problem] = []
    try:
        rules = load_rules(data_dir / "rules.yaml")
        normalize = Normalizer(rules.typos)
    except ConfigError as exc:
        return exc.problems
    train, train_problems = _load_training(data_dir / "train")
    problems.extend(train_problems)
    problems.extend(_duplicates(train, normalize))
    evaluation: list[Example] = []
    for path in leakage.evaluation_files(data_dir):
        try:
            examples = load_heldout(path).examples
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(_duplicates(examples, normalize))
        evaluation.extend(examples)
    problems.extend(leakage.leaks(evaluation, train, data_dir / "rules.yaml", normalize))
    return problems


def _duplicates(examples: list[Example], normalize: Normalizer) -> Iterator[Problem]:
    exact: dict[str, Example] = {}
    spelled: dict[str, Example] = {}
    for e in examples:
        if not e.text.strip():
            yield Problem(e.file, e.line, "empty text", "text")
            continue
        first = exact.setdefault(e.text, e)
        if first is not e and set(first.intents) == set(e.intents):
            yield Problem(e.file, e.line, f"duplicate of {first.file}:{first.line}: {e.text!r}")
            continue
        # One message in two spellings (TD / ｔｄ, 生意赔了 / 生意赔了！！), or twice, must carry
        # the same labels: the model cannot learn both.
        other = spelled.setdefault(sentence_key(normalize, e.text), e)
        if other is not e and set(other.intents) != set(e.intents):
            yield Problem(
                e.file,
                e.line,
                f"{e.text!r} is labelled {_names(e)} here but {other.text!r} is labelled "
                f"{_names(other)} at {other.file}:{other.line}",
            )


# Spacing and punctuation do not make a sentence new (人工客服！！！ is 人工客服!); emoji do.
_NOISE = re.compile(r"[\s,.!?;:~'\"()\-_]+")


def sentence_key(normalize: Normalizer, text: str) -> str:
    """What makes two sentences one: the normalised text without spacing and punctuation."""
    return _NOISE.sub("", normalize(text).text)


def _names(e: Example) -> str:
    return "[" + ", ".join(i.value for i in e.intents) + "]"

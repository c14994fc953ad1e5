"""Operator-editable rules and lexicons per intent (``intents/data/rules.yaml``).

A rule is a regular expression over the normalised text, with a weight. It can be
negation-aware (``negatable``: 不会还 does not fire 会还; ``not_after`` / ``not_before`` give
the exact contexts that cancel it), ``hard`` (decides its intent on its own, used for ``stop``
and ``wrong_number``), or ``weak`` (only counts when no other intent has a rule hit, for generic
cues such as a question mark).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import ConfigError, Problem
from intents.model import Intent, RuleHit


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    pattern: str
    weight: float = Field(default=0.9, ge=0.0, le=1.0)
    scope: Literal["text", "compact"] = "text"
    hard: bool = False
    weak: bool = False
    negatable: bool = False
    not_after: str | None = None
    not_before: str | None = None
    why: str | None = None

    @field_validator("pattern", "not_after", "not_before")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return v


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    typos: dict[str, str] = Field(default_factory=dict)
    negators: str = r"(?:不|没|没有|别|未|不会|不能|不想|不用|不要|无法|并非|不是)\s*$"
    suppress: dict[Intent, list[Intent]] = Field(default_factory=dict)
    intents: dict[Intent, list[RuleSpec]]


class CompiledRule:
    __slots__ = ("hard", "id", "intent", "negatable", "not_after", "not_before", "pattern", "scope",
                 "weak", "weight")  # fmt: skip

    def __init__(self, intent: Intent, spec: RuleSpec) -> None:
        self.intent = intent
        self.id = spec.id
        self.pattern = re.compile(spec.pattern)
        self.weight = 1.0 if spec.hard else spec.weight
        self.scope = spec.scope
        self.hard = spec.hard
        self.weak = spec.weak
        self.negatable = spec.negatable
        self.not_after = re.compile(spec.not_after + r"\s*$") if spec.not_after else None
        # Matched with .match(text, pos): anchored at pos, which "^" would not be.
        self.not_before = re.compile(r"\s*" + spec.not_before) if spec.not_before else None


_CLAUSE_BREAK = re.compile(r"[,.!?;~\s]")


class Rules:
    """Compiled rules; ``match`` is pure and allocation-light (it runs on every message)."""

    def __init__(self, spec: RulesFile) -> None:
        self.typos = spec.typos
        self.suppress = {k: frozenset(v) for k, v in spec.suppress.items()}
        self._negators = re.compile(spec.negators)
        self._rules = [CompiledRule(i, r) for i, rules in spec.intents.items() for r in rules]
        self.specs: tuple[CompiledRule, ...] = tuple(self._rules)
        self._weak_ids = frozenset(r.id for r in self._rules if r.weak)

    def match(self, text: str, compact: str) -> tuple[list[RuleHit], list[RuleHit]]:
        """(hits, suppressed): rules that fired, and rules whose match a negation cancelled."""
        hits: list[RuleHit] = []
        suppressed: list[RuleHit] = []
        for rule in self._rules:
            subject = compact if rule.scope == "compact" else text
            for m in rule.pattern.finditer(subject):
                hit = RuleHit(
                    rule=rule.id, intent=rule.intent, weight=rule.weight, match=m.group(),
                    hard=rule.hard,
                )  # fmt: skip
                if rule.scope == "text" and self._cancelled(rule, subject, m):
                    suppressed.append(hit)
                    continue
                hits.append(hit)
                break
        if self._weak_ids:
            # A weak cue (a bare question mark) says nothing once a specific rule has spoken.
            strong = {h.intent for h in hits if h.rule not in self._weak_ids}
            hits = [h for h in hits if h.rule not in self._weak_ids or not strong - {h.intent}]
        return hits, suppressed

    def _cancelled(self, rule: CompiledRule, text: str, m: re.Match[str]) -> bool:
        clause_start = max((b.end() for b in _CLAUSE_BREAK.finditer(text, 0, m.start())), default=0)
        before = text[clause_start : m.start()]
        if rule.not_after is not None and rule.not_after.search(text[: m.start()]):
            return True
        if rule.negatable and self._negators.search(before):
            return True
        return rule.not_before is not None and bool(rule.not_before.match(text, m.end()))


def load_rules(path: Path) -> Rules:
    try:
        text = path.read_text(encoding="utf-8")
        raw: Any = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, f"cannot read: {exc}")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            [Problem(str(path), mark.line + 1 if mark else None, f"invalid YAML: {exc}")]
        ) from exc
    try:
        spec = RulesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            [
                Problem(str(path), line_of(text, err["loc"]), err["msg"], _loc(err["loc"]))
                for err in exc.errors()
            ]
        ) from exc
    ids = [r.id for rules in spec.intents.values() for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(
            [Problem(str(path), None, f"duplicate rule ids: {', '.join(dupes)}", "id")]
        )
    return Rules(spec)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def line_of(text: str | yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Line of the YAML node at ``loc`` (or of its nearest existing parent), in a text or in
    its composed node (compose once when asking for many lines)."""
    node: yaml.Node | None = yaml.compose(text) if isinstance(text, str) else text
    line = 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line

"""Lexicon files (``config/lexicons/*.yaml``): terms, patterns, exceptions and evasions, validated
with file and line."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import ConfigError, Problem
from common.yamlio import Located, load_yaml, validation_problems
from policy.findings import LexiconSeverity
from policy.text import Normalizer, default_normalizer

_MAX_VARIANTS = 256  # spellings one term may expand into through the evasion map


class LexiconCategory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^\S+$")  # rule id, unique across a pack's files
    category: str = Field(min_length=1)
    severity: LexiconSeverity
    why: str = Field(min_length=1)
    terms: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)  # regexes over the normalised text
    allow: list[str] = Field(default_factory=list)  # harmless phrases around a term: 谨防骗子
    # Read in context (policy/context.py): a negated hit (我们不会曝光), a quotation framed as
    # a warning or reported speech does not count. For what a sender does (threats, exposure,
    # consequences), never for words that hurt by themselves (insults).
    in_context: bool = False
    # With in_context: 请您/您可以 directly before the term mean the borrower acts (您可以通知
    # 您的家人陪同办理), not the sender.
    borrower_exempt: bool = False


class LexiconFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    # other spelling → the spelling used in the terms (劳赖: 老赖); applies to every term
    evasions: dict[str, str] = Field(default_factory=dict)
    categories: list[LexiconCategory] = Field(min_length=1)


@dataclass(frozen=True)
class Lexicon:
    """The validated content of a pack's lexicon files."""

    categories: tuple[LexiconCategory, ...]
    evasions: dict[str, str]  # normalised variant → normalised canonical, chains resolved


def load_lexicons(paths: Sequence[Path]) -> Lexicon:
    """Read and validate lexicon files; every problem raises one ``ConfigError`` naming file,
    line and field (unknown severity, empty terms, invalid regex, duplicate rule id …)."""
    normalize = default_normalizer()
    problems: list[Problem] = []
    categories: list[LexiconCategory] = []
    evasions: dict[str, str] = {}
    seen_ids: dict[str, str] = {}
    for path in paths:
        doc = load_yaml(path)
        try:
            lex = LexiconFile.model_validate(doc.data if doc.data is not None else {})
        except ValidationError as exc:
            problems.extend(validation_problems(exc, doc))
            continue
        for variant, canonical in lex.evasions.items():
            v, c = normalize(str(variant)), normalize(canonical)
            if not v or not c or v == c:
                problems.append(
                    doc.problem(
                        ("evasions", variant),
                        f"evasion {variant!r} → {canonical!r} is empty or changes nothing "
                        "once normalised",
                        "write another spelling on the left and the terms' spelling on the right",
                    )
                )
            else:
                evasions[v] = c
        for i, spec in enumerate(lex.categories):
            problems.extend(_category_problems(doc, i, spec, normalize))
            where = f"{doc.file}:{doc.line(('categories', i, 'id'))}"
            if spec.id in seen_ids:
                problems.append(
                    doc.problem(
                        ("categories", i, "id"),
                        f"duplicate rule id {spec.id!r} (first at {seen_ids[spec.id]})",
                        "every category needs its own id",
                    )
                )
                continue
            seen_ids[spec.id] = where
            categories.append(spec)
    cycle = _evasion_cycle(evasions)
    if cycle:
        files = ", ".join(str(p) for p in paths)
        problems.append(Problem(files, None, f"evasions go round in a cycle: {cycle}", "evasions"))
    if problems:
        raise ConfigError(problems)
    return Lexicon(tuple(categories), _resolve_chains(evasions))


def _category_problems(
    doc: Located, i: int, spec: LexiconCategory, normalize: Normalizer
) -> list[Problem]:
    out: list[Problem] = []
    if not spec.terms and not spec.patterns:
        out.append(
            doc.problem(
                ("categories", i, "terms"),
                "empty terms: a category needs at least one term or pattern",
                "add terms (literal words) or patterns (regular expressions)",
            )
        )
    for field in ("terms", "allow"):
        for j, term in enumerate(getattr(spec, field)):
            if not normalize(term):
                out.append(
                    doc.problem(
                        ("categories", i, field, j),
                        f"{term!r} is empty once spaces and punctuation are removed",
                        "terms are matched without spaces or punctuation",
                    )
                )
    for j, pattern in enumerate(spec.patterns):
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            out.append(
                doc.problem(
                    ("categories", i, "patterns", j),
                    f"invalid regex {pattern!r}: {exc}",
                    "patterns are Python regular expressions; write them in 'single quotes'",
                )
            )
            continue
        if rx.search("") is not None:
            out.append(
                doc.problem(
                    ("categories", i, "patterns", j),
                    f"pattern {pattern!r} matches the empty text",
                    "it would hit every message; use + instead of * or ?",
                )
            )
    return out


def _evasion_cycle(evasions: dict[str, str]) -> str | None:
    for start in evasions:
        path = [start]
        cur = start
        while cur in evasions:
            cur = evasions[cur]
            if cur in path:
                return " → ".join([*path, cur])
            path.append(cur)
    return None


def _resolve_chains(evasions: dict[str, str]) -> dict[str, str]:
    """nin → 您 and 您 → 你 become nin → 你 (the map has no cycles by now)."""
    out = {}
    for variant, canonical in evasions.items():
        while canonical in evasions:
            canonical = evasions[canonical]
        out[variant] = canonical
    return out


def term_spellings(term: str, by_canonical: dict[str, list[str]]) -> set[str]:
    """Every spelling of ``term`` the evasion map allows (each canonical replaced in turn)."""
    out = {term}
    for canonical, variants in by_canonical.items():
        if canonical not in term:
            continue
        for spelled in list(out):
            if canonical in spelled:
                out.update(spelled.replace(canonical, v) for v in variants)
        if len(out) > _MAX_VARIANTS:
            break
    return out

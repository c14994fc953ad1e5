"""Meaning rules (``config/meaning/*.yaml``): who × action × target, not exact phrases.

A list of phrases cannot keep up with paraphrase: ``通知你家人``, ``把你的欠款情况发给你的同事``
and ``您的紧急联系人将收到您的逾期通知`` say one thing in three ways. A meaning rule names *word
classes* (``disclose``: 通知/告知/发给/联系/致电…; ``third_party``: 家人/同事/单位/通讯录…) and
the orders in which they make the prohibited statement (``[disclose, third_party]``,
``[third_party, learn]``), each part at most ``within`` characters after the previous one, in one
clause of the normalised text. A match counts unless its context says otherwise
(:mod:`policy.context`: negation, framed quotation, reported speech, and for rules with
``borrower_exempt`` the borrower's own action).

Words go through the pack's lexicon ``evasions`` like lexicon terms do (write 你: 您, ni … match).
``harmless`` lists words that contain class words but mean no harm: the sender (本公司
contains 公司), the lender's own contractual acts (额度冻结 contains 冻结), chance neighbours
(收到您家人 contains 到您家). They are blanked out before the sequences are matched.
Every rule has an id, a ``why`` and a ``source``; findings carry both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import ConfigError, Problem
from common.yamlio import load_yaml, validation_problems
from policy.context import Context, ContextRules, ContextWords, alternation
from policy.findings import Finding
from policy.lexicon import term_spellings
from policy.text import PyMatcher, default_normalizer

try:
    import ahocorasick_rs
except ImportError:  # pragma: no cover - PyMatcher stands in
    ahocorasick_rs = None  # type: ignore[assignment]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sequence_(_Spec):
    seq: list[str] = Field(min_length=1)
    within: int | None = Field(default=None, ge=0, le=40)


class MeaningRule(_Spec):
    id: str = Field(min_length=1, pattern=r"^\S+$")
    category: str = Field(min_length=1)
    severity: Literal["block", "soft"]
    why: str = Field(min_length=1)
    source: str = Field(min_length=1)
    within: int = Field(default=8, ge=0, le=40)  # characters between two parts of a match
    borrower_exempt: bool = False  # 请您联系家人: the borrower acts, not the sender
    match: list[list[str] | Sequence_] = Field(min_length=1)


class Negation(_Spec):
    negators: list[str] = Field(default_factory=list)
    not_negators: list[str] = Field(default_factory=list)
    conditions: list[str] = Field(default_factory=list)
    scope_ends: list[str] = Field(default_factory=list)
    borrower_acts: list[str] = Field(default_factory=list)


class Reported(_Spec):
    frames: list[str] = Field(default_factory=list)
    reporters: list[str] = Field(default_factory=list)


class MeaningFile(_Spec):
    description: str = ""
    words: dict[str, list[str]] = Field(default_factory=dict)
    harmless: list[str] = Field(default_factory=list)
    negation: Negation = Negation()
    reported: Reported = Reported()
    rules: list[MeaningRule] = Field(default_factory=list)


@dataclass(frozen=True)
class MeaningRules:
    """The validated content of a pack's meaning files (normalised, not yet compiled)."""

    words: dict[str, tuple[str, ...]]
    harmless: tuple[str, ...]
    context: ContextWords
    rules: tuple[MeaningRule, ...]


def load_meaning_rules(paths: Sequence[Path]) -> MeaningRules:
    """Read and validate meaning files; every problem raises one ``ConfigError`` naming file,
    line and field (missing why/source, unknown word class, empty word, duplicate rule id …)."""
    norm = default_normalizer()
    problems: list[Problem] = []
    words: dict[str, tuple[str, ...]] = {}
    harmless: list[str] = []
    lists: dict[str, list[str]] = {}
    rules: list[MeaningRule] = []
    seen: dict[str, str] = {}
    for path in paths:
        doc = load_yaml(path)
        try:
            spec = MeaningFile.model_validate(doc.data if doc.data is not None else {})
        except ValidationError as exc:
            problems.extend(validation_problems(exc, doc))
            continue

        def normalised(items: list[str], where: tuple[str | int, ...]) -> list[str]:
            out = []
            for j, w in enumerate(items):
                n = norm(str(w))
                if not n:
                    problems.append(
                        doc.problem(  # noqa: B023 - used at once, inside this iteration
                            (*where, j),
                            f"{w!r} is empty once spaces and punctuation are removed",
                            "words are matched without spaces or punctuation",
                        )
                    )
                else:
                    out.append(n)
            return out

        for name, items in spec.words.items():
            words[name] = tuple(normalised(items, ("words", name)))
        harmless += normalised(spec.harmless, ("harmless",))
        for section, model in (("negation", spec.negation), ("reported", spec.reported)):
            for field, items in model:
                lists.setdefault(field, []).extend(normalised(items, (section, field)))
        for i, rule in enumerate(spec.rules):
            where = f"{doc.file}:{doc.line(('rules', i, 'id'))}"
            if rule.id in seen:
                problems.append(
                    doc.problem(
                        ("rules", i, "id"),
                        f"duplicate rule id {rule.id!r} (first at {seen[rule.id]})",
                        "every rule needs its own id",
                    )
                )
                continue
            seen[rule.id] = where
            for k, alt in enumerate(rule.match):
                seq = alt.seq if isinstance(alt, Sequence_) else alt
                for j, cls in enumerate(seq):
                    if cls not in spec.words and cls not in words:
                        problems.append(
                            doc.problem(
                                ("rules", i, "match", k, j),
                                f"unknown word class {cls!r}",
                                f"define it under `words:` (known: {', '.join(sorted(words))})",
                            )
                        )
            rules.append(rule)
    if problems:
        raise ConfigError(problems)
    context = ContextWords(
        **{f: tuple(lists.get(f, ())) for f in ContextWords.__dataclass_fields__}
    )
    return MeaningRules(words, tuple(harmless), context, tuple(rules))


# --- matching --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Alt:
    rule: MeaningRule
    classes: tuple[str, ...]
    rx: re.Pattern[str]  # one group per class, lazy gaps between them, in a lookahead
    finding: Finding


class MeaningMatcher:
    """Compiled meaning rules of one pack. :meth:`find` is pure."""

    def __init__(
        self, rules: MeaningRules, evasions: dict[str, str], *, use_rust: bool = True
    ) -> None:
        by_canonical: dict[str, list[str]] = {}
        for variant, canonical in evasions.items():
            by_canonical.setdefault(canonical, []).append(variant)

        def spelled(items: Sequence[str]) -> list[str]:
            return sorted({s for w in items for s in term_spellings(w, by_canonical)})

        classes = {name: alternation(spelled(ws)) for name, ws in rules.words.items()}
        harmless = alternation(spelled(rules.harmless))
        self._harmless = re.compile(harmless) if harmless else None
        c = rules.context
        self.context = ContextRules(
            ContextWords(
                *(tuple(spelled(getattr(c, f))) for f in ContextWords.__dataclass_fields__)
            )
        )
        self._alts: list[_Alt] = []
        for rule in rules.rules:
            for alt in rule.match:
                seq = tuple(alt.seq if isinstance(alt, Sequence_) else alt)
                within = (
                    alt.within
                    if isinstance(alt, Sequence_) and alt.within is not None
                    else rule.within
                )
                gap = f"(.{{0,{within}}}?)"
                body = gap.join(f"({classes[c]})" for c in seq)
                finding = Finding(
                    rule=rule.id,
                    category=rule.category,
                    severity=rule.severity,
                    term="…".join(seq),
                    why=rule.why,
                    source=rule.source,
                )
                self._alts.append(_Alt(rule, seq, re.compile(f"(?=({body}))"), finding))
        # One Aho-Corasick pass says which word classes occur at all; only sequences whose
        # every class occurs run their regex. The usual reminder runs none (a regex per
        # sequence over every text would cost several times the whole lexicon check).
        used = {c for a in self._alts for c in a.classes}
        owners: dict[str, set[str]] = {}
        for name in used:
            for w in spelled(rules.words[name]):
                owners.setdefault(w, set()).add(name)
        self._words = sorted(owners)
        self._word_classes = [frozenset(owners[w]) for w in self._words]
        self._anchor: PyMatcher | ahocorasick_rs.AhoCorasick | None = None
        if self._words:
            rust = use_rust and ahocorasick_rs is not None
            self._anchor = (
                ahocorasick_rs.AhoCorasick(self._words) if rust else PyMatcher(self._words)
            )

    @property
    def rule_count(self) -> int:
        return len({a.rule.id for a in self._alts})

    def present(self, compact: str) -> frozenset[str]:
        """The word classes that occur in ``compact``."""
        if self._anchor is None:
            return frozenset()
        matches = self._anchor.find_matches_as_indexes(compact, overlapping=True)
        return frozenset().union(*(self._word_classes[i] for i, _, _ in matches))

    def candidates(self, compact: str) -> bool:
        present = self.present(compact)
        return any(present.issuperset(a.classes) for a in self._alts)

    def find(
        self,
        compact: str,
        context: Callable[[], Context],
        *,
        soft: bool,
    ) -> list[tuple[int, int, Finding]]:
        """(start, end, finding) of every rule with a match that its context does not exempt;
        soft rules only with ``soft``."""
        present = self.present(compact)
        text = compact
        if self._harmless is not None:
            text = self._harmless.sub(lambda m: "\x00" * len(m.group()), compact)
        ctx: Context | None = None
        out: dict[str, tuple[int, int, Finding]] = {}
        for alt in self._alts:
            if alt.rule.id in out or (alt.rule.severity == "soft" and not soft):
                continue
            if not present.issuperset(alt.classes):
                continue
            for m in alt.rx.finditer(text):
                start, end = m.start(1), m.end(1)
                ctx = ctx or context()
                if end > ctx.clause_at(start)[1]:
                    continue  # the parts stand in different clauses
                n = len(alt.classes)
                gaps = [(m.start(3 + 2 * k), m.end(3 + 2 * k)) for k in range(n - 1)]
                if ctx.exempt(start, end, gaps, borrower=alt.rule.borrower_exempt):
                    continue
                out[alt.rule.id] = (start, end, alt.finding)
                break
        return list(out.values())

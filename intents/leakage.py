"""Evaluation sentences must never feed what is evaluated (``smsbot intents check``).

An evaluation set measures unseen text only while it stays unseen: a sentence of it in the
training files, word for word in a rule's pattern, or quoted in a rule's ``why:`` turns its
figure into a measure of memory. Sentences are compared after normalisation, as the NLU reads
them (spacing, width, script and punctuation do not hide a copy).

Sentences of fewer than :data:`MIN_TOKENS` tokens (a Chinese character, a Latin word or a number
each) are exempt from the rules check: 退订, 好的, STOP are the lexicon itself, and any rule set
that honours an opt-out must contain them. Training copies are caught at any length. For the same
reason the patterns of ``hard`` rules (stop, wrong number) are exempt, their ``why`` is not: an
opt-out phrase stays in the lexicon even when a later blind set happens to hold it, since a
missed opt-out is a breach of law and not an error rate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from common.errors import Problem
from intents.data import Example, sentence_key
from intents.normalize import Normalizer
from intents.rules import line_of

MIN_TOKENS = 4
_TOKEN = re.compile(r"[a-z]+|\d+|[^\W\d_a-z]")
# Regex syntax that is not text: escapes like \s, \d, classes' brackets, quantifiers, groups.
_SYNTAX = re.compile(r"\\[a-zA-Z]|\(\?[:=!<]*|\{\d*,?\d*\}|[\\^$.*+?()\[\]{}|]")


def evaluation_files(data_dir: Path) -> list[Path]:
    """The evaluation sets: the held-out set and every blind set."""
    return sorted(p for p in data_dir.glob("*.yaml") if p.name == "heldout.yaml"
                  or p.name.startswith("blind"))  # fmt: skip


def leaks(
    evaluation: Sequence[Example],
    training: Sequence[Example],
    rules_path: Path,
    normalize: Normalizer,
) -> Iterator[Problem]:
    """Every evaluation sentence found in training data, a rule's pattern or a rule's why."""
    source = rules_path.read_text(encoding="utf-8")
    rules_doc = yaml.safe_load(source)
    tree = yaml.compose(source)  # once: every rule's line is looked up in it
    train: dict[str, Example] = {}
    for e in training:
        train.setdefault(sentence_key(normalize, e.text), e)
    texts = list(_rule_texts(rules_doc, normalize, tree))
    for e in evaluation:
        key = sentence_key(normalize, e.text)
        if not key:
            continue
        seen = train.get(key)
        if seen is not None:
            yield Problem(
                e.file,
                e.line,
                f"{e.text!r} is also a training example at {seen.file}:{seen.line} "
                "(evaluation sentences never feed training)",
            )
        words = normalize(e.text).compact
        if len(_TOKEN.findall(words)) < MIN_TOKENS:
            continue
        for rule_id, where, line, literal in texts:
            if words in literal:
                yield Problem(
                    e.file,
                    e.line,
                    f"{e.text!r} is word for word in the {where} of rule {rule_id} at "
                    f"{rules_path}:{line} (evaluation sentences never feed rules)",
                )


def _rule_texts(
    doc: Any, normalize: Normalizer, tree: yaml.Node | None
) -> Iterator[tuple[str, str, int | None, str]]:
    """(rule id, pattern|why, line, its words) for every rule: each literal run of a pattern
    with the regex syntax removed (明天(把钱)?还上 reads 明天把钱还上)."""
    intents = doc.get("intents") if isinstance(doc, dict) else None
    for intent, rules in (intents or {}).items():
        for n, rule in enumerate(rules or []):
            if not isinstance(rule, dict):
                continue
            rid = str(rule.get("id", "?"))
            patterns = [] if rule.get("hard") else _alternatives(str(rule.get("pattern", "")))
            line = line_of(tree, ("intents", intent, n, "pattern"))
            for alt in patterns:
                yield rid, "pattern", line, normalize(_SYNTAX.sub("", alt)).compact
            if rule.get("why"):
                why_line = line_of(tree, ("intents", intent, n, "why"))
                yield rid, "why", why_line, normalize(str(rule["why"])).compact


def _alternatives(pattern: str) -> list[str]:
    """The pattern's literal runs: split at every ``|``, nested ones too, so that two
    alternatives of one group are never read as one phrase (``(好的|收到)+`` is not 好的收到)."""
    return re.split(r"(?<!\\)\|", pattern)

"""The template checks' view of the compliance lexicons (``config/lexicons/*.yaml``).

One list of prohibited, soft-risk and debt words serves both the validator (here, at load
time) and the compliance gate (before every send), so a term an operator adds reaches both.
The default rule pack's checker is built once per process, on first use.
"""

from __future__ import annotations

from functools import cache

from policy.content import ContentChecker, Finding


@cache
def _checker() -> ContentChecker:
    from policy.pack import CONFIG_DIR, load_packs

    packs = load_packs()
    return ContentChecker.load(packs.packs[packs.default_pack], CONFIG_DIR)


def _findings(text: str) -> list[Finding]:
    return _checker().check(text, approved_template=False, first_contact=False)


def hard_block_hits(text: str) -> list[tuple[str, str]]:
    return [(f.category, f.term) for f in _findings(text) if f.severity == "block"]


def soft_risk_hits(text: str) -> list[str]:
    return [f.term for f in _findings(text) if f.severity == "soft"]


def debt_word_hits(text: str) -> list[str]:
    return [f.term for f in _checker().debt_content(text)]

"""What the content checker reports, and which findings stop a text (one answer for the gate,
``compliance check`` and ``flows validate``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from policy.pack import Pack

Severity = Literal["block", "soft", "debt_content", "required", "format"]
LexiconSeverity = Literal["block", "soft", "debt_content", "format"]


class Finding(BaseModel):
    """One thing the checker found; every severity but ``debt_content`` is a reason not to send."""

    model_config = ConfigDict(frozen=True)

    rule: str  # rule id, e.g. CN-CONTENT-01/violence
    category: str
    severity: Severity
    term: str  # the lexicon entry (term or pattern) as written, or the missing element
    why: str  # the law or guideline behind the rule
    # The words as they stand in the original text (``馬 上 逮.捕``) for block and soft hits
    # when they can be located; empty otherwise (never for ID or card numbers: no PII in logs).
    quote: str = ""
    source: str = ""  # where the rule comes from (meaning rules name their source)


def blocking(findings: Iterable[Finding], *, approved: bool, debt_content: bool) -> list[Finding]:
    """The findings that stop a text. Hard-block and format findings always do (an approval
    never covers them); soft-risk wording unless compliance approved the wording; a missing
    required element when the text is about the debt (``debt_content`` or a debt word in it)."""
    found = list(findings)
    debt = debt_content or any(f.severity == "debt_content" for f in found)
    return [
        f
        for f in found
        if f.severity in ("block", "format")
        or (f.severity == "soft" and not approved)
        or (f.severity == "required" and debt)
    ]


# Rule ids of the built-in checks that the research notes number differently per market.
_CONTACT_RULE = {"cn": "CN-CONTENT-05/contact"}


def required_findings(pack: Pack, *, bare_signature: bool) -> dict[str, Finding]:
    """The findings of the built-in checks (required elements, format), keyed for the checker."""
    p = pack.name.upper()
    content = pack.content

    def req(rule: str, category: str, term: str, why: str) -> Finding:
        return Finding(rule=rule, category=category, severity="required", term=term, why=why)

    out = {
        "signature": req(
            f"{p}-ID-01/signature",
            "whitelisted signature at the start",
            "signature" if bare_signature else "【signature】",
            f"the registered sender name ({', '.join(content.signature_whitelist)}) must "
            "open every SMS (CN-ID-01, CN-SMS-01)",
        ),
        "creditor": req(
            f"{p}-ID-01/creditor",
            "creditor named",
            "creditor name",
            f"the creditor must be named ({', '.join(content.creditor_names)}) (CN-ID-01)",
        ),
        "contact": req(
            _CONTACT_RULE.get(pack.name.lower(), f"{p}-ID-02/contact"),
            "official contact",
            "official contact",
            "every collection SMS carries an official channel for questions and disputes "
            f"({', '.join(content.official_contacts)}) (CN-CONTENT-05)",
        ),
        "brackets": Finding(
            rule=f"{p}-SMS-01/brackets",
            category="【】 in the body",
            severity="format",
            term="【】",
            why="only the signature stands in 【】: providers reject the rest (CN-SMS-01)",
        ),
        "segments": Finding(
            rule="SMS-ENC-01/segments",
            category="too many segments",
            severity="format",
            term="",
            why="required elements must arrive within max_segments (SMS-ENC-01, SMS-SPLIT-01)",
        ),
    }
    for phrase in content.required_every:
        out[f"every:{phrase}"] = req(
            f"{p}-REQ-01/every",
            "phrase required in every SMS",
            phrase,
            "the pack requires it in every SMS (US-OPTOUT-01 opt-out line, US-MM-01 "
            "'from a debt collector')",
        )
    for phrase in content.required_first_contact:
        out[f"first:{phrase}"] = req(
            f"{p}-REQ-02/first-contact",
            "phrase required in the first contact",
            phrase,
            "the pack requires it in the initial communication (US-MM-01 mini-Miranda)",
        )
    return out

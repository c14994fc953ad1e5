"""What the content checker reports, and which findings stop a text (one answer for the gate,
``compliance check`` and ``flows validate``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

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

"""Template checks of the flow validator: form, variables, length, and every content rule the
compliance gate enforces on a text, with the gate's own rule ids.

The gate (``bot.compliance.gate``) and this module ask one :class:`policy.rulebook.ContentPolicy`
the same question — which findings stop this text (:func:`policy.findings.blocking`) — so a
template that passes ``flows validate`` is not blocked for its wording at send time. Each
template is rendered with typical sample values (``张*``, ``1234``, ``3200.00``) and checked
against the flow's pack (``settings.compliance_pack``, else the file's default); templates sent
on ``start`` are checked as first contacts. Compliance approval (``compliance_approved``)
covers soft-risk wording only; :func:`approvals` says what each approval covers.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from common.errors import ConfigError, Problem
from dialogs.dispatch import all_rules
from dialogs.flow import Flow
from dialogs.schema import TemplateSpec
from dialogs.templates import VARIABLES, parse, render, sample_values, sms_length
from policy.content import ContentChecker, Finding, blocking
from policy.rulebook import ContentPolicy

MAX_CHARS = 500  # Aliyun and Huawei refuse longer messages (SMS-CN-LEN-01)
SIGNATURE_PREFIX = "【{signature}】"
SEGMENTS_RULE = "SMS-ENC-01/segments"  # the gate's id; checked here with the longest values
_TYPICAL = {"name": "张*", "last4": "1234", "amount_due": "3200.00", "days_overdue": "5"}


def _close(word: str, options: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean {match[0]!r}?" if match else None


def checker_for(flow: Flow, policy: ContentPolicy) -> tuple[ContentChecker | None, list[Problem]]:
    """The content checker of the flow's pack, or the problem naming an unknown pack."""
    name = flow.spec.settings.compliance_pack
    try:
        return policy.checker(name), []
    except ConfigError:
        known = sorted(policy.packs.packs)
        return None, [
            flow.problem(
                ("settings", "compliance_pack"),
                f"no rule pack {name!r} in the compliance file",
                _close(name or "", known) or f"known: {', '.join(known)}",
            )
        ]


def first_contact_templates(flow: Flow) -> set[str]:
    """Templates a conversation may open with (sent by a `start` rule)."""
    return {
        a.send
        for ref in all_rules(flow.spec)
        if ref.rule.when == "start"
        for a in ref.rule.do
        if a.send is not None
    }


def typical_text(flow: Flow, tpl: TemplateSpec) -> str:
    return render(tpl.text, sample_values(flow.spec.settings, **_TYPICAL))


def template_problems(flow: Flow, policy: ContentPolicy) -> list[Problem]:
    checker, problems = checker_for(flow, policy)
    first = first_contact_templates(flow)
    for name, tpl in flow.templates.items():
        src = flow.template_sources[name]

        def err(field: str | None, message: str, hint: str | None = None) -> None:
            problems.append(src.problem(field, message, hint))  # noqa: B023 - called at once

        if _form(flow, tpl, err) and checker is not None:
            _content(checker, typical_text(flow, tpl), tpl, name in first, err)
        if checker is not None and not tpl.debt_content:
            words = [f.term for f in checker.debt_content(tpl.text)]
            debt_vars = [
                v for v in parse(tpl.text).variables if v in VARIABLES and VARIABLES[v].debt
            ]
            if words or debt_vars:
                shown = ", ".join([*words, *(f"{{{v}}}" for v in debt_vars)])
                err(
                    "debt_content",
                    f"marked `debt_content: false` but mentions {shown}",
                    "messages to opted-out or wrong numbers must not reveal the debt",
                )
    return problems


def _form(flow: Flow, tpl: TemplateSpec, err: Callable[..., None]) -> bool:
    """Syntax, variables, signature, codes and length; True when the text can be rendered."""
    settings = flow.spec.settings
    parsed = parse(tpl.text)
    for e in parsed.errors:
        err("text", e)
    unknown = [v for v in parsed.variables if v not in VARIABLES]
    for var in unknown:
        err(
            "text",
            f"unknown variable {{{var}}}",
            _close(var, VARIABLES) or f"known: {', '.join(VARIABLES)}",
        )
    if not tpl.text.startswith(SIGNATURE_PREFIX):
        err(
            "text",
            "a template must start with 【{signature}】",
            "the registered signature identifies the sender (CN-ID-01, CN-SMS-01)",
        )
    # 【】 elsewhere in the text: the content rules report it (CN-SMS-01/brackets)
    missing = [p for p in settings.providers if p not in tpl.codes]
    if missing:
        err(
            "codes",
            f"no template code for provider(s) {', '.join(missing)}",
            "mainland providers send approved template codes, not free text",
        )
    if unknown or parsed.errors:
        return False
    length = sms_length(render(tpl.text, sample_values(settings)))
    if length.segments > settings.max_segments or length.units > MAX_CHARS:
        err(
            "text",
            f"{SEGMENTS_RULE}: up to {length.units} characters = {length.segments} SMS, over the "
            f"limit of {settings.max_segments}",
            "shorten the text (longest values of every variable and the 【signature】 count)",
        )
    return True


def _content(
    checker: ContentChecker, text: str, tpl: TemplateSpec, first: bool, err: Callable[..., None]
) -> None:
    found = checker.check(text, approved_template=tpl.approved, first_contact=first)
    for f in blocking(found, approved=tpl.approved, debt_content=tpl.debt_content):
        if f.rule == SEGMENTS_RULE:
            continue  # _form checked it with the longest values, stricter than these
        source = f" — {f.source}" if f.source else ""
        if f.severity == "block":
            # a meaning rule's term is its word classes (disclose…third_party): show the words
            shown = f"{f.quote!r} ({f.term})" if f.source and f.quote else repr(f.term)
            err(
                "text",
                f"{f.rule}: prohibited wording {shown}: {f.category}",
                f"never sent, approved or not: {f.why}{source}",
            )
        elif f.severity == "soft":
            err(
                "text",
                f"{f.rule}: soft-risk wording {f.term} needs compliance approval",
                "have compliance approve the text, then add `compliance_approved: "
                "{approved_by: <name>, approved_at: YYYY-MM-DD}`",
            )
        elif f.severity == "required":
            err("text", f"{f.rule}: missing {f.term}", f.why)
        else:
            err("text", f"{f.rule}: {f.category}: {f.term}", f.why)


def approvals(flow: Flow, policy: ContentPolicy) -> list[str]:
    """One line per approved template: who approved it, when, and the soft-risk findings the
    approval covers (an approval never covers a hard block, which ``flows validate`` reports)."""
    checker, _ = checker_for(flow, policy)
    out = []
    first = first_contact_templates(flow)
    for name, tpl in flow.templates.items():
        approval = tpl.compliance_approved
        if approval is None:
            continue
        covered: list[Finding] = []
        if checker is not None and not parse(tpl.text).errors:
            text = typical_text(flow, tpl)
            found = checker.check(text, approved_template=False, first_contact=name in first)
            covered = [f for f in found if f.severity == "soft"]
        what = (
            "; ".join(f"{f.rule} ({f.term})" for f in covered)
            or "nothing (no soft-risk wording; the approval can go)"
        )
        note = f" [{approval.note}]" if approval.note else ""
        out.append(
            f"approval {name}: by {approval.approved_by} on {approval.approved_at}{note}; "
            f"covers {what}"
        )
    return out

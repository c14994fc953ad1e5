"""A person's SMS to the borrower as an :class:`Outbound`: written once here, so that the
console's preview (``Desk.send_message``) and the queued event's application under the
account's lock (``bot.interpret``) put the very same message through the compliance gate.

A person answers a conversation the flow handed over, so the message is a ``reply`` (the
gate's caps for replies, no hold on a reply); it always counts as debt content (a person's
words about a collections case are never assumed harmless), and only a flow template whose
wording compliance approved is ``approved`` — free text never is.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from bot.desk.errors import InvalidRequest
from bot.records import AccountRecord, AuditEntry, Outbound, audit_entry
from dialogs import conversation as c
from dialogs.engine import CompiledFlow, rerender
from dialogs.templates import RenderError, sms_length

# The template name a person's free text is recorded under (messages, audit, the gate's audit).
AGENT_TEXT = "agent_text"
MAX_TEXT = 500


def checked_text(text: str) -> str:
    """The free text as it is sent: stripped, 1 to 500 characters."""
    stripped = text.strip()
    if not 1 <= len(stripped) <= MAX_TEXT:
        raise InvalidRequest(f"a message is 1 to {MAX_TEXT} characters")
    return stripped


def render_template(
    cf: CompiledFlow, conv: c.Conversation, name: str, at: datetime
) -> tuple[str, dict[str, str]]:
    """``name`` written for this account as the flow writes it on ``at``'s day: the text and
    the values a provider's approved template takes as parameters."""
    if name not in cf.flow.templates:
        raise InvalidRequest(f"flow {cf.name!r} has no template {name!r}")
    try:
        text, params, _ = rerender(cf, conv, name, at)
    except RenderError as exc:  # e.g. {promised_date} with no promise on record
        why = f"template {name!r} cannot be written for this account: {exc}"
        raise InvalidRequest(why) from exc
    return text, params


def agent_outbound(
    account: AccountRecord,
    cf: CompiledFlow,
    conv: c.Conversation,
    *,
    message_id: str,
    text: str | None,
    template: str | None,
    at: datetime,
    fingerprint: str = "",
) -> Outbound:
    """The message a person sends: exactly one of ``text`` and ``template``."""
    if (text is None) == (template is None):
        raise InvalidRequest("give either a text or a template, not both or neither")
    if template is not None:
        body, params = render_template(cf, conv, template, at)
        spec = cf.flow.templates[template]
        name, codes, approved = template, dict(spec.codes), spec.approved
    else:
        assert text is not None
        body, name, codes, approved, params = checked_text(text), AGENT_TEXT, {}, False, {}
    return Outbound(
        id=message_id,
        account_id=account.id,
        phone=account.phone,
        text=body,
        template=name,
        codes=codes,
        params=params,
        segments=sms_length(body).segments,
        debt_content=True,
        created_at=at,
        kind="reply",
        approved=approved,
        fingerprint=fingerprint,
    )


def offered_templates(cf: CompiledFlow, conv: c.Conversation, at: datetime) -> list[dict[str, Any]]:
    """The flow's templates written for this account (``name``, ``text``, ``approved``);
    those it cannot fill (a promised date with no promise) are left out."""
    out: list[dict[str, Any]] = []
    for name, spec in cf.flow.templates.items():
        with contextlib.suppress(InvalidRequest):
            text, _ = render_template(cf, conv, name, at)
            out.append({"name": name, "text": text, "approved": spec.approved})
    return out


def refused_entry(
    at: datetime, agent: str, case_id: str, msg: Outbound, rules: list[str], reasons: list[str]
) -> AuditEntry:
    """The audit of a message the gate refused at the console (nothing was queued)."""
    return audit_entry(
        at,
        "agent_message",
        by=agent,
        case_id=case_id,
        template=msg.template,
        text=msg.text,
        verdict="block",
        rules=rules,
        reasons=reasons,
    )

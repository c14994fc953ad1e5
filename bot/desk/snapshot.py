"""One account's conversation as the store has it now, read once for whoever shows it: the
JSON API (``GET /api/conversations/{id}``) and the agent's view (``bot.desk.view``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.compliance.gate import Gate, GateContext
from bot.compliance.status import gate_context, status
from bot.outbound.record import OutboundRecord
from bot.records import AccountRecord, AuditEntry
from bot.storage.base import Store
from dialogs import conversation as c
from dialogs.registry import Registry


@dataclass(frozen=True)
class Snapshot:
    account: AccountRecord
    conv: c.Conversation | None  # None: the campaign has not started it yet
    audit: list[AuditEntry]  # oldest first
    records: list[OutboundRecord]  # every outbound message, queued ones included
    # bot.compliance.status.status, and "deferred": the messages the gate holds, with when
    compliance: dict[str, Any]
    opted_out: bool
    context: GateContext  # what the gate knows of the recipient now


async def read_snapshot(
    store: Store, gate: Gate, registry: Registry, account_id: str, now: datetime
) -> Snapshot | None:
    """None: no such account."""
    account = await store.get_account(account_id)
    if account is None:
        return None
    raw = await store.get_conversation(account_id)
    conv = c.Conversation.model_validate_json(raw) if raw else None
    audit = await store.read_audit(account_id)
    ctx = await gate_context(store, gate, registry, account, conv, now)
    compliance = status(ctx, now)
    compliance["deferred"] = [
        {"message_id": m.id, "template": m.template, "not_before": m.not_before.isoformat()}
        for m in await store.deferred(account_id)
        if m.not_before
    ]
    return Snapshot(
        account=account,
        conv=conv,
        audit=audit,
        records=await store.outbound_records(account_id),
        compliance=compliance,
        opted_out=await store.is_opted_out(account.phone),
        context=ctx,
    )

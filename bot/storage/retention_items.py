"""How the retention sweep (bot.retention) names and dates stored items, the same for every
store: an id that holds no personal text, and the time the item's age counts from."""

from __future__ import annotations

import json
from datetime import datetime

from bot.outbound.carriers.base import Receipt
from bot.records import AuditEntry, Outbound
from bot.transport.inbound import InboundSms

Item = tuple[str, datetime | None]


def audit_item(index: int, entry: AuditEntry) -> str:
    """The entry's place in the account's audit, its kind and time."""
    return f"{index}:{entry.kind}@{entry.at.isoformat()}"


def unmatched_item(sms: InboundSms) -> Item:
    return f"{sms.provider}:{sms.msg_id}", sms.received_at


def handled_item(record: dict[str, object]) -> Item:
    sms = record.get("sms")
    at = record.get("at")
    name = f"{sms.get('provider')}:{sms.get('msg_id')}" if isinstance(sms, dict) else "?"
    return name, datetime.fromisoformat(at) if isinstance(at, str) else None


def receipt_item(raw: str | bytes) -> Item:
    try:
        r = Receipt.model_validate_json(raw)
    except ValueError:
        return "?", None  # unreadable: kept for a person, as it was
    return f"{r.carrier}:{r.message_id or r.provider_id or '?'}", r.at


def sandbox_item(message: Outbound) -> Item:
    return message.id, message.created_at


def handled_json(raw: str | bytes) -> dict[str, object]:
    data = json.loads(raw)
    return data if isinstance(data, dict) else {}


def older(item: Item, before: datetime) -> bool:
    return item[1] is not None and item[1] < before

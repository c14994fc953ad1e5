"""Delivery receipts: a provider's report moves the record it names, never backwards.

Correlation: our message id when the provider echoes it (Aliyun ``out_id``, Tencent ``ext``,
the ``ref`` we put in Twilio's StatusCallback URL), else the provider's id (indexed when the
send was stored as ``sent``). Receipts come late, twice, and out of order: one for a record
already in a terminal state changes nothing (``unknown`` excepted: a receipt settles it), and
an intermediate report (``sent``) never overwrites a later one. A report that matches no
record is kept in the unmatched-receipts list for people, not refused. An ``undelivered`` or
``failed`` report queues the flow's ``delivery_failed`` event for the conversation; when its
code says something about the number (Alibaba Cloud's ``MOBILE_IN_BLACK``, which it reports
only in the receipt; Twilio's delivery errors 30005/30006), the number is put on the
suppression list or marked unreachable, as a send refused with that code would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from bot.clock import Clock
from bot.outbound.carriers import aliyun, tencent, twilio
from bot.outbound.carriers.base import Receipt
from bot.outbound.record import RECEIPT_FROM, OutboundRecord
from bot.records import QueuedEvent, audit_entry
from bot.storage.base import Store, Transition

log = logging.getLogger(__name__)

Applied = Literal["applied", "duplicate", "unmatched"]
_CAS_TRIES = 5  # a sender may be storing the send's outcome at the same moment
# Each carrier's codes that speak of the number: (unsubscribed, cannot be reached).
_NUMBER_CODES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "aliyun": (aliyun.OPT_OUT_CODES, aliyun.INVALID_NUMBER_CODES),
    "tencent": (tencent.OPT_OUT_CODES, tencent.INVALID_NUMBER_CODES),
    "twilio": (twilio.OPT_OUT_CODES, twilio.INVALID_NUMBER_CODES),
}


async def apply(
    store: Store, clock: Clock, receipt: Receipt, on_event: Callable[[str], None]
) -> Applied:
    located = await _locate(store, receipt)
    if located is None:
        await store.add_unmatched_receipt(receipt.model_dump_json())
        log.info("delivery receipt from %s matches no message; kept", receipt.carrier)
        return "unmatched"
    account_id, message_id = located
    for _ in range(_CAS_TRIES):
        record = await store.outbound(account_id, message_id)
        if record is None:
            await store.add_unmatched_receipt(receipt.model_dump_json())
            return "unmatched"
        t = _transition(record, receipt, clock)
        if t is None:
            return "duplicate"
        if await store.move(t):
            if t.event is not None:
                on_event(account_id)
            return "applied"
    log.warning("delivery receipt for message %s: record kept changing; dropped", message_id)
    return "duplicate"


async def _locate(store: Store, receipt: Receipt) -> tuple[str, str] | None:
    if receipt.message_id:
        account_id = await store.message_account(receipt.message_id)
        if account_id is not None:
            return account_id, receipt.message_id
    if receipt.provider_id:
        return await store.locate(receipt.carrier, receipt.provider_id)
    return None


def _transition(record: OutboundRecord, receipt: Receipt, clock: Clock) -> Transition | None:
    if record.state not in RECEIPT_FROM:
        return None  # terminal already, or never sent: a late or stray report
    if receipt.state == "sent" and record.state in ("sent", "unknown"):
        return None  # an intermediate report adds nothing to what is known
    if record.carrier and record.carrier != receipt.carrier:
        return None  # another provider's id that happens to match: not this message
    now = clock.now()
    provider_id = record.provider_id or receipt.provider_id
    changes: dict[str, object] = {
        "provider_id": provider_id,
        "code": receipt.code,
        "detail": receipt.detail,
        "lease": None,
        "next_at": None,
        "ambiguous": False,
    }
    if record.sent_at is None:
        changes["sent_at"] = receipt.at or now
    new = record.moved(receipt.state, now, **changes)
    failed = receipt.state in ("undelivered", "failed")
    opt_out_codes, invalid_codes = _NUMBER_CODES.get(receipt.carrier, (frozenset(), frozenset()))
    opted_out = failed and receipt.code in opt_out_codes
    invalid_number = failed and receipt.code in invalid_codes
    audit = [
        audit_entry(
            now,
            receipt.state,
            message_id=record.id,
            carrier=receipt.carrier,
            provider_id=provider_id,
            code=receipt.code,
            detail=receipt.detail,
            reported_at=receipt.at.isoformat() if receipt.at else None,
            source="receipt",
            opted_out=opted_out or None,
            invalid_number=invalid_number or None,
        )
    ]
    event = None
    if failed:
        reason = f"{receipt.code or receipt.state}: {receipt.detail or 'not delivered'}"
        event = QueuedEvent(kind="delivery_failed", at=now, reason=reason)
    index = (receipt.carrier, provider_id) if provider_id and not record.provider_id else None
    # A report for a record still ``sending`` (the provider answered the callback before our
    # call returned, or after a crash) settles it: the senders' index forgets it.
    return Transition(
        new,
        record.version,
        audit,
        undue=True,
        event=event,
        opt_out=opted_out,
        invalid_number=invalid_number,
        provider_index=index,
    )

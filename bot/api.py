"""The JSON API (Bearer $SMSBOT_API_KEY): accounts, conversations, payments, sandbox, health."""

from __future__ import annotations

import json
import os
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from bot.context import API_KEY, CLOCK, FLOWS, GATE, NLU, PIPELINE, SENDER, STORE
from bot.desk.snapshot import read_snapshot
from bot.outbound.record import OutboundRecord
from bot.phones import mobile_e164
from bot.records import AccountRecord, QueuedEvent, shared_phone
from bot.storage.base import StoreUnavailable
from bot.transport.inbound import WebhookError, same_secret

TRANSCRIPT_KINDS = frozenset(
    {
        "inbound",
        "understood",
        "preference",
        "step",
        "send",
        "gate",
        "sent",
        "failed",
        "retry",
        "ambiguous",
        "delivered",
        "undelivered",
        "unknown",
        "blocked",
        "superseded",
        "handoff",
        "payment",
        "error",
        "timer_moved",
        "agent",  # a person's console action (bot.desk), with their name
        "agent_message",  # a person's message the gate refused at the console: never queued
        "case_expired",  # the case queue's SLA ran out unclaimed: supervisors told
    }
)


class StrictBody(BaseModel):
    """A JSON request body: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


# One POST /api/accounts takes at most this many rows (more is a 413 saying so): each row is
# a store write or two, and the request must finish well within a client's timeout.
MAX_BATCH_ROWS = 10_000


class AccountsBody(StrictBody):
    accounts: list[dict[str, Any]]
    start: bool = True


class PaymentBody(StrictBody):
    account_id: str = Field(min_length=1)
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    paid_at: AwareDatetime
    reference: str = Field(min_length=1, max_length=200)


class AgentBody(StrictBody):
    action: Literal["resolved", "returned", "closed"]


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/accounts", post_accounts),
        web.get("/api/conversations/{account_id}", get_conversation),
        web.post("/api/conversations/{account_id}/agent", post_agent_action),
        web.post("/api/payments", post_payment),
        web.get("/api/sandbox/messages", get_sandbox_messages),
        web.get("/api/unmatched", get_unmatched),
        web.get("/api/receipts/unmatched", get_unmatched_receipts),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
    ]


def require_key(request: web.Request) -> None:
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {request.app[API_KEY]}"
    # same_secret: a header holding non-ASCII (or undecodable) bytes is a wrong key, not a 500.
    if not same_secret(expected, given):
        raise WebhookError(401, "missing or wrong API key (Authorization: Bearer …)")


async def read_json(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        raise WebhookError(400, _reasons(exc)) from exc


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )


async def post_accounts(request: web.Request) -> web.Response:
    require_key(request)
    body: AccountsBody = await read_json(request, AccountsBody)
    if len(body.accounts) > MAX_BATCH_ROWS:
        raise WebhookError(413, batch_too_large(f"{len(body.accounts)} rows"))
    store, pipeline, clock = request.app[STORE], request.app[PIPELINE], request.app[CLOCK]
    flows = request.app[FLOWS]
    created = updated = started = 0
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    phones: dict[str, str] = {}  # phone -> the account of this batch that has it
    for index, row in enumerate(body.accounts):
        try:
            account = account_row(row)
            flows.get(account.flow)
        except ValidationError as exc:
            errors.append({"index": index, "id": row.get("id"), "error": _reasons(exc)})
            continue
        except Exception as exc:  # unknown flow
            errors.append({"index": index, "id": row.get("id"), "error": str(exc)})
            continue
        other = phones.get(account.phone) or await store.find_account(account.phone)
        if other is not None and other != account.id:
            # Taken (one borrower may have two loans), but said: a reply from this number
            # reaches one conversation only, the account uploaded last.
            warnings.append(
                {
                    "index": index,
                    "id": account.id,
                    "warning": shared_phone(account.phone, other, account.id),
                }
            )
        phones[account.phone] = account.id
        if await store.upsert_account(account):
            created += 1
            if body.start:
                # The dedup key makes a re-sent batch start each conversation only once.
                start = QueuedEvent(kind="start", at=clock.now())
                started += await pipeline.submit(account.id, start, dedup="start")
        else:
            updated += 1
    return web.json_response(
        {
            "created": created,
            "updated": updated,
            "started": started,
            "errors": errors,
            "warnings": warnings,
        },
        status=200,
    )


def batch_too_large(what: str) -> str:
    """The 413 reason of a batch over the limits: how many rows fit."""
    return (
        f"batch too large ({what}): at most {MAX_BATCH_ROWS} accounts per request;"
        f" send them in batches of {MAX_BATCH_ROWS} rows or fewer"
    )


def account_row(row: dict[str, Any]) -> AccountRecord:
    """One uploaded row as a record; its phone validated as a mobile and written E.164."""
    phone = row.get("phone")
    if isinstance(phone, str):
        try:
            row = {**row, "phone": mobile_e164(phone)}
        except ValueError as exc:
            raise ValidationError.from_exception_data(
                "AccountRecord",
                [{"type": "value_error", "loc": ("phone",), "input": phone, "ctx": {"error": exc}}],
            ) from None
    return AccountRecord.model_validate(row)


async def get_conversation(request: web.Request) -> web.Response:
    require_key(request)
    account_id = request.match_info["account_id"]
    app = request.app
    now = app[CLOCK].now()
    snap = await read_snapshot(app[STORE], app[GATE], app[FLOWS], account_id, now)
    if snap is None:
        raise WebhookError(404, f"no account {account_id!r}")
    account, conv = snap.account, snap.conv
    return web.json_response(
        {
            "account_id": account_id,
            "phone": account.phone,
            "flow": conv.flow if conv else account.flow,
            "flow_version": conv.flow_version if conv else None,
            "state": conv.state if conv else None,
            "flags": [f.value for f in conv.flags] if conv else [],
            "counters": conv.counters if conv else {},
            "promise": conv.promise.model_dump(mode="json") if conv and conv.promise else None,
            "plan": [i.model_dump(mode="json") for i in conv.plan] if conv else [],
            "paid_total": str(conv.paid_total) if conv else "0",
            "outstanding": str(conv.outstanding) if conv else str(account.amount_due),
            "timers": {k: v.isoformat() for k, v in conv.timers.items()} if conv else {},
            "opted_out": snap.opted_out,
            "compliance": snap.compliance,
            "transcript": [
                e.model_dump(mode="json") for e in snap.audit if e.kind in TRANSCRIPT_KINDS
            ],
            "messages": [message_view(r) for r in snap.records],
        }
    )


def message_view(r: OutboundRecord) -> dict[str, Any]:
    """One outbound message as the API shows it: its text and where it is in the send path."""
    return {
        "id": r.id,
        "template": r.message.template,
        "text": r.message.text,
        "state": r.state,
        "carrier": r.carrier,
        "provider_id": r.provider_id,
        "attempts": r.attempts,
        "code": r.code,
        "detail": r.detail,
        "created_at": r.message.created_at.isoformat(),
        "not_before": r.message.not_before.isoformat() if r.message.not_before else None,
        "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        "final_at": r.final_at.isoformat() if r.final_at else None,
    }


async def get_unmatched_receipts(request: web.Request) -> web.Response:
    require_key(request)
    raw = await request.app[STORE].list_unmatched_receipts(_limit(request))
    return web.json_response([json.loads(r) for r in raw])


async def post_agent_action(request: web.Request) -> web.Response:
    require_key(request)
    account_id = request.match_info["account_id"]
    body: AgentBody = await read_json(request, AgentBody)
    if await request.app[STORE].get_account(account_id) is None:
        raise WebhookError(404, f"no account {account_id!r}")
    event = QueuedEvent(kind="agent", at=request.app[CLOCK].now(), action=body.action)
    await request.app[PIPELINE].submit(account_id, event)
    return web.json_response({"status": "accepted"}, status=202)


async def post_payment(request: web.Request) -> web.Response:
    require_key(request)
    body: PaymentBody = await read_json(request, PaymentBody)
    if await request.app[STORE].get_account(body.account_id) is None:
        raise WebhookError(404, f"no account {body.account_id!r}")
    event = QueuedEvent(
        kind="payment",
        at=request.app[CLOCK].now(),
        amount=body.amount,
        reference=body.reference,
    )
    accepted = await request.app[PIPELINE].submit(
        body.account_id, event, dedup=f"payment:{body.reference}"
    )
    return web.json_response({"status": "accepted" if accepted else "duplicate"}, status=202)


async def get_sandbox_messages(request: web.Request) -> web.Response:
    require_key(request)
    messages = await request.app[STORE].list_sandbox(_limit(request))
    return web.json_response([m.model_dump(mode="json") for m in messages])


async def get_unmatched(request: web.Request) -> web.Response:
    require_key(request)
    messages = await request.app[STORE].list_unmatched(_limit(request))
    return web.json_response([m.model_dump(mode="json") for m in messages])


def _limit(request: web.Request) -> int:
    try:
        return max(1, min(int(request.query.get("limit", "200")), 10_000))
    except ValueError as exc:
        raise WebhookError(400, "limit: expected an integer") from exc


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        await request.app[STORE].ping()
        checks["store"] = "ok"
    except StoreUnavailable as exc:
        checks["store"] = f"unavailable: {exc}"
    checks["flows"] = "ok" if request.app[FLOWS].names() else "none loaded"
    checks["nlu"] = "ok" if request.app.get(NLU) is not None else "not loaded"
    sender = request.app.get(SENDER)
    for carrier, broken in sorted(sender.health.items()) if sender else ():
        # A carrier refusing our credentials or URL: messages are held, not sent.
        checks[f"carrier:{carrier}"] = "ok" if broken is None else f"refuses our set-up: {broken}"
    ready = all(v == "ok" for v in checks.values())
    body = {"ready": ready, "checks": checks, "pid": os.getpid()}
    return web.json_response(body, status=200 if ready else 503)


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)

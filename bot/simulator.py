"""The demo simulator (``make run``): play a borrower in the browser, move the clock.

Only mounted in demo mode, which uses the sandbox provider: nothing here reaches a carrier.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import Field

from bot.api import StrictBody, read_json
from bot.context import CLOCK, GATE, NLU, PIPELINE, STORE
from bot.demo import DEMO_IDS, demo_accounts
from bot.records import AccountRecord, QueuedEvent
from bot.transport.inbound import InboundSms, WebhookError
from dialogs import conversation as c

PAGE = Path(__file__).resolve().parent / "static" / "simulator.html"
_DURATION = re.compile(r"^(\d{1,4})([mhd])$")


class ReplyBody(StrictBody):
    account_id: str
    text: str = Field(min_length=1, max_length=1000)


class AdvanceBody(StrictBody):
    duration: str = Field(description="e.g. 30m, 4h, 2d")


class PaymentBody(StrictBody):
    account_id: str
    amount: Decimal = Field(gt=0, decimal_places=2)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/simulator", page),
        web.get("/simulator/api/accounts", accounts),
        web.get("/simulator/api/state/{account_id}", state),
        web.post("/simulator/api/reply", reply),
        web.post("/simulator/api/advance", advance),
        web.post("/simulator/api/payment", payment),
    ]


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-store"})


async def accounts(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "now": request.app[CLOCK].now().isoformat(),
            "accounts": [
                {
                    "id": a.id,
                    "name": a.name,
                    "phone": a.phone,
                    "amount_due": str(a.amount_due),
                    "days_overdue": a.days_overdue,
                }
                for a in demo_accounts(request.app)
            ],
        }
    )


async def _demo_account(request: web.Request, account_id: str) -> AccountRecord:
    """A demo borrower's record; any other account is 404, as if it did not exist."""
    account = await request.app[STORE].get_account(account_id) if account_id in DEMO_IDS else None
    if account is None:
        raise WebhookError(404, f"no demo account {account_id!r}")
    return account


async def _view(request: web.Request, account_id: str) -> dict[str, Any]:
    store = request.app[STORE]
    account = await _demo_account(request, account_id)
    raw = await store.get_conversation(account_id)
    conv = c.Conversation.model_validate_json(raw) if raw else None
    audit = await store.read_audit(account_id)
    understood = [e for e in audit if e.kind == "understood"]
    gate = request.app[GATE]
    zone = gate.zones(account.phone, account.tz, gate.pack(account.pack))[0]
    messages = [m for m in await store.list_sandbox(10_000) if m.account_id == account_id]
    events: list[dict[str, Any]] = []
    for e in audit:
        if e.kind == "inbound":
            events.append(
                {"at": e.at.isoformat(), "who": "borrower", "text": e.detail.get("text", "")}
            )
        elif e.kind == "send":
            events.append(
                {
                    "at": e.at.isoformat(),
                    "who": "bot",
                    "text": e.detail.get("text", ""),
                    "template": e.detail.get("template"),
                    "message_id": e.detail.get("message_id"),
                }
            )
        elif e.kind == "gate" and e.detail.get("verdict") != "send":
            # The compliance gate held a message back: say when (deferred, in the borrower's
            # time: the gate's `until` is UTC, and 00:00 UTC reads like the past in Beijing)
            # or why (blocked).
            verdict = e.detail.get("verdict")
            detail = dict(e.detail)
            if verdict == "defer" and detail.get("until"):
                until = datetime.fromisoformat(detail["until"]).astimezone(zone)
                detail["until_local"] = f"{until:%m-%d %H:%M}"
            rules = ", ".join(detail.get("rules", []))
            text = (
                f"deferred to {detail.get('until_local')} ({rules})"
                if verdict == "defer"
                else f"blocked ({rules})"
            )
            events.append(
                {
                    "at": e.at.isoformat(),
                    "who": "system",
                    "text": f"gate: {text}",
                    "kind": "gate",
                    "detail": detail,
                }
            )
        elif e.kind in {"handoff", "blocked", "close", "error", "payment", "superseded"}:
            # kind and detail let the page say which message was blocked, and why.
            events.append(
                {
                    "at": e.at.isoformat(),
                    "who": "system",
                    "text": f"{e.kind}: {e.detail}",
                    "kind": e.kind,
                    "detail": e.detail,
                }
            )
    return {
        "now": request.app[CLOCK].now().isoformat(),
        "account_id": account_id,
        "tz": account.tz,
        "state": conv.state if conv else None,
        "flags": [f.value for f in conv.flags] if conv else [],
        "timers": {k: v.isoformat() for k, v in conv.timers.items()} if conv else {},
        "promise": conv.promise.model_dump(mode="json") if conv and conv.promise else None,
        "paid_total": str(conv.paid_total) if conv else "0",
        # A handed-off conversation: the page links to it in the agents' console.
        "console_url": (
            f"/console/cases/{quote(account_id, safe='')}"
            if await store.desk.case(account_id) is not None
            else None
        ),
        "last_understanding": understood[-1].detail if understood else None,
        "transcript": events,
        "sent": [m.model_dump(mode="json") for m in messages],
        # Each message's place in the send state machine (sent / delivered / failed …).
        "messages": {
            r.id: {"state": r.state, "code": r.code, "carrier": r.carrier}
            for r in await store.outbound_records(account_id)
        },
    }


async def state(request: web.Request) -> web.Response:
    return web.json_response(await _view(request, request.match_info["account_id"]))


async def reply(request: web.Request) -> web.Response:
    body: ReplyBody = await read_json(request, ReplyBody)
    account = await _demo_account(request, body.account_id)
    sms = InboundSms(
        provider="simulator",
        msg_id=uuid.uuid4().hex,
        phone=account.phone,
        text=body.text,
        received_at=request.app[CLOCK].now(),
    )
    pipeline = request.app[PIPELINE]
    await pipeline.receive(sms)
    await pipeline.idle()  # the page shows the consequences at once
    view = await _view(request, body.account_id)
    view["understanding"] = (
        request.app[NLU]
        .understand(body.text, now=sms.received_at, tz=account.tz or "Asia/Shanghai")
        .to_json_dict()
    )
    return web.json_response(view)


async def advance(request: web.Request) -> web.Response:
    body: AdvanceBody = await read_json(request, AdvanceBody)
    m = _DURATION.match(body.duration.strip())
    if m is None:
        raise WebhookError(400, "duration: use a number and m, h or d (30m, 4h, 2d)")
    n, unit = int(m.group(1)), m.group(2)
    delta = {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]
    if not timedelta(0) < delta <= timedelta(days=60):
        raise WebhookError(400, "duration: between 1 minute and 60 days")
    clock, pipeline = request.app[CLOCK], request.app[PIPELINE]
    # Step through in hours so timers that fall due along the way fire in order.
    step = min(delta, timedelta(hours=1))
    remaining = delta
    while remaining > timedelta(0):
        clock.advance(min(step, remaining))
        remaining -= step
        await pipeline.fire_due_timers()
        await pipeline.idle()
    return web.json_response({"now": clock.now().isoformat()})


async def payment(request: web.Request) -> web.Response:
    body: PaymentBody = await read_json(request, PaymentBody)
    await _demo_account(request, body.account_id)
    now = request.app[CLOCK].now()
    event = QueuedEvent(
        kind="payment", at=now, amount=body.amount, reference=f"sim-{uuid.uuid4().hex}"
    )
    pipeline = request.app[PIPELINE]
    await pipeline.submit(body.account_id, event)
    await pipeline.idle()
    return web.json_response(await _view(request, body.account_id))

"""Webhooks: inbound SMS (authenticate, parse into InboundSms, store durably, then acknowledge)
and delivery receipts (authenticated the same way; bot.outbound.receipts).

Processing happens after the acknowledgement (``Pipeline.kick``); the message is already in
the account's queue, so a crash after the answer loses nothing (recovered at restart).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic import ValidationError

from bot.context import CLOCK, PIPELINE, SETTINGS, STORE
from bot.outbound import receipts
from bot.outbound.carriers import aliyun as aliyun_carrier
from bot.outbound.carriers import tencent as tencent_carrier
from bot.outbound.carriers import twilio as twilio_carrier
from bot.outbound.carriers.base import Receipt
from bot.settings import Settings
from bot.transport import aliyun, auth, generic, tencent, twilio
from bot.transport.inbound import InboundSms, WebhookError


def routes() -> list[web.RouteDef]:
    return [
        # Delivery receipts first: /webhooks/aliyun/{token} would otherwise take "report".
        web.post("/webhooks/twilio/status", twilio_status),
        web.post("/webhooks/aliyun/report", aliyun_report),
        web.post("/webhooks/aliyun/report/{token}", aliyun_report),
        web.post("/webhooks/tencent/status", tencent_status),
        web.post("/webhooks/tencent/status/{token}", tencent_status),
        web.post("/webhooks/twilio", twilio_inbound),
        web.post("/webhooks/generic", generic_inbound),
        web.get("/webhooks/aliyun", aliyun_probe),
        web.get("/webhooks/aliyun/{token}", aliyun_probe),
        web.post("/webhooks/aliyun", aliyun_inbound),
        web.post("/webhooks/aliyun/{token}", aliyun_inbound),
        web.post("/webhooks/tencent", tencent_inbound),
        web.post("/webhooks/tencent/{token}", tencent_inbound),
    ]


async def _accept(request: web.Request, messages: Sequence[InboundSms]) -> None:
    pipeline = request.app[PIPELINE]
    for sms in messages:
        await pipeline.receive(sms)


def _secret(value: object | None, provider: str) -> str:
    if value is None:
        raise WebhookError(403, f"{provider} webhook is not configured (no secret set)")
    return value.get_secret_value()  # type: ignore[attr-defined, no-any-return]


async def _twilio_form(request: web.Request) -> list[tuple[str, str]]:
    """The form of a request Twilio signed (inbound messages and status callbacks alike)."""
    settings = request.app[SETTINGS]
    token = _secret(settings.twilio_auth_token, "twilio")
    if request.content_type != "application/x-www-form-urlencoded":
        raise WebhookError(400, "expected application/x-www-form-urlencoded")
    # Twilio always sends UTF-8. aiohttp's own parser (C-accelerated: it runs for every
    # webhook, bench/inbound.py) trusts the charset parameter, so any other charset is decoded
    # here as UTF-8 instead (an unknown one raised LookupError: a 500 and a traceback).
    try:
        if (request.charset or "utf-8").lower() in ("utf-8", "utf8"):
            form = await request.post()
            params = [(k, v) for k, v in form.items() if isinstance(v, str)]
            if any("\ufffd" in k or "\ufffd" in v for k, v in params):
                # aiohttp reads a bad escaped byte (%FF) as U+FFFD; the generic webhook refuses
                # such a body, and so does this one (read strictly: a real U+FFFD is kept).
                params = parse_qsl(
                    (await request.read()).decode("utf-8"),
                    keep_blank_values=True,
                    encoding="utf-8",
                    errors="strict",
                )
        else:
            params = parse_qsl(
                (await request.read()).decode("utf-8"),
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
            )
    except UnicodeDecodeError as exc:
        raise WebhookError(400, "form body is not valid UTF-8") from exc
    # Twilio signs the URL it called, as it saw it: our public URL, not the socket address.
    url = settings.base_url + request.path_qs
    twilio.verify(
        token,
        url,
        params,
        request.headers.get(twilio.SIGNATURE_HEADER),
        settings_header=request.headers.get(twilio.SIGNATURE_SETTINGS_HEADER),
    )
    return params


async def twilio_inbound(request: web.Request) -> web.Response:
    params = await _twilio_form(request)
    sms = twilio.parse(params, request.app[CLOCK].now())
    await _accept(request, [sms])
    return web.Response(text=twilio.TWIML_EMPTY, content_type="text/xml")


async def generic_inbound(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    secret = _secret(settings.generic_secret, "generic")
    body = await request.read()
    now = request.app[CLOCK].now()
    generic.verify(
        secret,
        request.headers.get(generic.TIMESTAMP_HEADER),
        request.headers.get(generic.SIGNATURE_HEADER),
        body,
        now,
        window=_window(settings),
    )
    sms = generic.parse(body, now)
    await _accept(request, [sms])
    return web.json_response({"ok": True, "id": sms.msg_id})


def _guard(request: web.Request, token: object | None, allowed: list[str], provider: str) -> None:
    """Providers that sign nothing: a secret path token and/or an IP allow-list."""
    if token is None and not allowed:
        raise WebhookError(403, f"{provider} webhook is not configured (set a path token or IPs)")
    if token is not None:
        auth.check_path_token(token.get_secret_value(), request.match_info.get("token"))  # type: ignore[attr-defined]
    auth.check_ip(allowed, request.remote)


async def aliyun_probe(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    _guard(request, settings.aliyun_path_token, settings.aliyun_allowed_ips, "aliyun")
    return web.json_response(aliyun.PROBE_ACK)


async def aliyun_inbound(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    _guard(request, settings.aliyun_path_token, settings.aliyun_allowed_ips, "aliyun")
    messages = aliyun.parse(await request.read(), request.app[CLOCK].now())
    await _accept(request, messages)
    return web.json_response(aliyun.ACK)


async def tencent_inbound(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    _guard(request, settings.tencent_path_token, settings.tencent_allowed_ips, "tencent")
    messages = tencent.parse(await request.read(), request.app[CLOCK].now())
    await _accept(request, messages)
    return web.json_response(tencent.ACK)


# --- delivery receipts (bot.outbound.receipts) ----------------------------------------------


def _parsed(parse: Callable[[], list[Receipt]]) -> list[Receipt]:
    """A provider's receipts, or 400: a value no receipt may hold (a field the parser
    accepted but the record refuses, e.g. lone surrogates in an id) is bad input too."""
    try:
        return parse()
    except ValidationError as exc:
        raise WebhookError(400, f"malformed receipt: {exc.errors()[0]['msg']}") from exc


async def _receipts(request: web.Request, found: Sequence[Receipt]) -> None:
    app = request.app

    def kick(account_id: str) -> None:
        app[PIPELINE].kick(account_id)

    for receipt in found:
        await receipts.apply(app[STORE], app[CLOCK], receipt, kick)


async def twilio_status(request: web.Request) -> web.Response:
    params = await _twilio_form(request)
    ref = request.query.get("ref")
    await _receipts(request, _parsed(lambda: [twilio_carrier.parse_status_callback(params, ref)]))
    return web.Response(status=204)


async def aliyun_report(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    _guard(request, settings.aliyun_path_token, settings.aliyun_allowed_ips, "aliyun")
    body = await request.read()
    await _receipts(request, _parsed(lambda: aliyun_carrier.parse_reports(body)))
    return web.json_response(aliyun.ACK)


async def tencent_status(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    _guard(request, settings.tencent_path_token, settings.tencent_allowed_ips, "tencent")
    body = await request.read()
    await _receipts(request, _parsed(lambda: tencent_carrier.parse_reports(body)))
    return web.json_response(tencent.ACK)


def _window(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.replay_window_s)


def error_body(status: int, reason: str) -> str:
    return json.dumps({"error": reason, "status": status}, ensure_ascii=False)

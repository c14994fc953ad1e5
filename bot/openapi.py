"""The OpenAPI document of the JSON API, built from the same pydantic models that validate it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import __version__
from bot.api import AccountsBody, AgentBody, PaymentBody
from bot.records import AccountRecord


def routes() -> list[web.RouteDef]:
    return [web.get("/api/openapi.json", get_openapi)]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _responses(ok: str, *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {ok: {"description": "OK", "content": {"application/json": {}}}}
    reasons = {
        400: "malformed body",
        401: "missing or wrong API key",
        403: "not authenticated",
        404: "unknown account",
        413: "body too large",
        503: "storage unavailable",
    }
    for code in errors:
        out[str(code)] = {
            "description": reasons[code],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return out


_token = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}


def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (AccountsBody, AccountRecord, PaymentBody, AgentBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["AccountsBody"]["properties"]["accounts"]["items"] = _ref("AccountRecord")
    schemas["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
        "required": ["error", "status"],
    }
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    account_param = [
        {"name": "account_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "smsbot API", "version": __version__},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/accounts": {
                "post": {
                    "summary": "Create or update accounts; start new accounts' conversations",
                    "security": bearer,
                    "requestBody": _json_body("AccountsBody"),
                    "responses": _responses("200", 400, 401, 413, 503),
                }
            },
            "/api/conversations/{account_id}": {
                "get": {
                    "summary": "State, flags, promise, timers and transcript of a conversation",
                    "security": bearer,
                    "parameters": account_param,
                    "responses": _responses("200", 401, 404, 503),
                }
            },
            "/api/conversations/{account_id}/agent": {
                "post": {
                    "summary": "An agent resolved, returned or closed the conversation",
                    "security": bearer,
                    "parameters": account_param,
                    "requestBody": _json_body("AgentBody"),
                    "responses": _responses("202", 400, 401, 404, 503),
                }
            },
            "/api/payments": {
                "post": {
                    "summary": "Report a payment (idempotent by reference)",
                    "security": bearer,
                    "requestBody": _json_body("PaymentBody"),
                    "responses": _responses("202", 400, 401, 404, 503),
                }
            },
            "/api/sandbox/messages": {
                "get": {
                    "summary": "Outbound messages recorded by the sandbox provider",
                    "security": bearer,
                    "responses": _responses("200", 401, 503),
                }
            },
            "/api/unmatched": {
                "get": {
                    "summary": "Inbound messages from numbers with no account",
                    "security": bearer,
                    "responses": _responses("200", 401, 503),
                }
            },
            "/api/receipts/unmatched": {
                "get": {
                    "summary": "Delivery receipts that matched no outbound message",
                    "security": bearer,
                    "responses": _responses("200", 401, 503),
                }
            },
            # Delivery receipts, in each provider's own format (README: "Sending").
            "/webhooks/twilio/status": {
                "post": {
                    "summary": "Twilio status callback (X-Twilio-Signature; ?ref=<message id>)",
                    "responses": _responses("204", 400, 403, 503),
                }
            },
            "/webhooks/aliyun/report/{token}": {
                "post": {
                    "summary": "Alibaba Cloud SmsReport push (JSON array; path token, IP list)",
                    "parameters": [_token],
                    "responses": _responses("200", 400, 403, 503),
                }
            },
            "/webhooks/tencent/status/{token}": {
                "post": {
                    "summary": "Tencent Cloud delivery status push (JSON array; token, IPs)",
                    "parameters": [_token],
                    "responses": _responses("200", 400, 403, 503),
                }
            },
        },
    }


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(document())

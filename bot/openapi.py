"""The OpenAPI document: the JSON API, the providers' webhooks, health and readiness.

Every request and response body is a pydantic model (``bot.api``, ``bot.records``,
``bot.schemas``); the document is generated from them, and the tests check each real response
against its model, so what this says is what the service does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot import __version__, schemas
from bot.api import MAX_BATCH_ROWS, AccountsBody, AgentBody, PaymentBody
from bot.campaigns import openapi as campaigns_api
from bot.console import openapi as console_api
from bot.records import AccountRecord

_REF = "#/components/schemas/{model}"
_REASONS = {
    400: "malformed request: the reason names the field",
    401: "missing or wrong API key",
    403: "not authenticated (signature, path token or IP allow-list), or not configured",
    404: "unknown account",
    408: "the body did not arrive in time (SMSBOT_BODY_TIMEOUT_S)",
    413: "body too large",
    503: "storage unavailable: retry later",
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_ERRORS_API = (400, 401, 408, 413, 503)
_ERRORS_HOOK = (400, 403, 408, 413, 503)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/openapi.json", get_openapi)]


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    return {"$ref": _REF.format(model=model if isinstance(model, str) else model.__name__)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": _REASONS[code], "content": _json(_ref("Error"))}
        for code in codes
    }


def _responses(ok: int, body: dict[str, Any], *errors: int, what: str = "OK") -> dict[str, Any]:
    return {str(ok): {"description": what, "content": body}, **_errors(*errors)}


def _param(name: str, where: str = "path", **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string", **schema} if "type" not in schema else schema,
    }


_ACCOUNT = _param("account_id")
_TOKEN = _param("token")
_LIMIT = _param("limit", "query", type="integer", minimum=1, maximum=10_000, default=200)


def _schemas() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (AccountsBody, "validation"),
        (AccountRecord, "validation"),
        (PaymentBody, "validation"),
        (AgentBody, "validation"),
        (schemas.TwilioInbound, "validation"),
        (schemas.TwilioStatus, "validation"),
        (schemas.GenericInbound, "validation"),
        (schemas.AliyunInbound, "validation"),
        (schemas.TencentInbound, "validation"),
        *console_api.MODELS,
        *campaigns_api.MODELS,
    ]
    responses: list[type[BaseModel]] = [
        schemas.Error,
        schemas.AccountsResult,
        schemas.Accepted,
        schemas.ConversationView,
        schemas.Health,
        schemas.Readiness,
        schemas.GenericAck,
        schemas.AliyunAck,
        schemas.TencentAck,
        schemas.ReloadReport,
        *schemas.LISTS.values(),
    ]
    models += [(m, "serialization") for m in responses]
    _, top = models_json_schema(models, ref_template=_REF)
    found: dict[str, Any] = top["$defs"]
    found["AccountsBody"]["properties"]["accounts"] = {
        "type": "array",
        "items": _ref(AccountRecord),
        "maxItems": MAX_BATCH_ROWS,
        "description": f"at most {MAX_BATCH_ROWS} rows (more: 413)",
    }
    return found


def _api() -> dict[str, Any]:
    def listing(path: str, summary: str) -> dict[str, Any]:
        item = _ref(schemas.LISTS[path])
        body = _json({"type": "array", "items": item})
        return {
            "get": {
                "summary": summary,
                "security": _BEARER,
                "parameters": [_LIMIT],
                "responses": _responses(200, body, 400, 401, 503),
            }
        }

    return {
        "/api/accounts": {
            "post": {
                "summary": "Create or update accounts; start new accounts' conversations",
                "security": _BEARER,
                "requestBody": {"required": True, "content": _json(_ref(AccountsBody))},
                "responses": _responses(200, _json(_ref(schemas.AccountsResult)), *_ERRORS_API),
            }
        },
        "/api/conversations/{account_id}": {
            "get": {
                "summary": "State, flags, promise, timers, transcript and messages",
                "security": _BEARER,
                "parameters": [_ACCOUNT],
                "responses": _responses(200, _json(_ref(schemas.ConversationView)), 401, 404, 503),
            }
        },
        "/api/conversations/{account_id}/agent": {
            "post": {
                "summary": "An agent resolved, returned or closed the conversation",
                "security": _BEARER,
                "parameters": [_ACCOUNT],
                "requestBody": {"required": True, "content": _json(_ref(AgentBody))},
                "responses": _responses(
                    202, _json(_ref(schemas.Accepted)), *_ERRORS_API, 404, what="queued"
                ),
            }
        },
        "/api/payments": {
            "post": {
                "summary": "Report a payment (idempotent by reference)",
                "security": _BEARER,
                "requestBody": {"required": True, "content": _json(_ref(PaymentBody))},
                "responses": _responses(
                    202, _json(_ref(schemas.Accepted)), *_ERRORS_API, 404, what="queued"
                ),
            }
        },
        "/api/sandbox/messages": listing(
            "/api/sandbox/messages", "Outbound messages recorded by the sandbox provider"
        ),
        "/api/unmatched": listing("/api/unmatched", "Inbound messages from unknown numbers"),
        "/api/receipts/unmatched": listing(
            "/api/receipts/unmatched", "Delivery receipts that matched no outbound message"
        ),
        "/api/admin/reload": {
            "post": {
                "summary": "Read flows, templates, rule packs and lexicons again (also on SIGHUP)",
                "security": _BEARER,
                "responses": {
                    "200": {
                        "description": "everything read was taken",
                        "content": _json(_ref(schemas.ReloadReport)),
                    },
                    "422": {
                        "description": "something was refused and what it concerns runs on "
                        "as before: `problems` names each as file:line: field: message",
                        "content": _json(_ref(schemas.ReloadReport)),
                    },
                    **_errors(401, 503),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": _responses(200, _json({"type": "object"})),
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers",
                "responses": _responses(200, _json(_ref(schemas.Health))),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics, with SMSBOT_METRICS_TOKEN as the bearer token "
                "(not the API key); off (403) without it. SMSBOT_METRICS_PORT serves them on a "
                "listener of their own instead",
                "security": [{"metricsToken": []}],
                "responses": {
                    "200": {
                        "description": "the text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": {
                        "description": "missing or wrong metrics token",
                        "content": _json(_ref("Error")),
                    },
                    "403": {
                        "description": "metrics are off on this port (no SMSBOT_METRICS_TOKEN)",
                        "content": _json(_ref("Error")),
                    },
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: store, flows, NLU and carriers usable",
                "responses": {
                    "200": {"description": "ready", "content": _json(_ref(schemas.Readiness))},
                    "503": {
                        "description": "not ready: `checks` says what is wrong",
                        "content": _json(_ref(schemas.Readiness)),
                    },
                },
            }
        },
    }


def _hook(
    summary: str,
    request: dict[str, Any],
    ok: dict[str, Any],
    *,
    token: bool = False,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "requestBody": {"required": True, "content": request},
        "responses": {**ok, **_errors(*_ERRORS_HOOK)},
    }
    if token:
        operation["parameters"] = [_TOKEN]
    if security is not None:
        operation["security"] = security
    return {"post": operation}


def _webhooks() -> dict[str, Any]:
    form = "application/x-www-form-urlencoded"
    twiml = {"text/xml": {"schema": {"type": "string", "example": "<Response/>"}}}
    aliyun_ack = {"200": {"description": "received", "content": _json(_ref(schemas.AliyunAck))}}
    tencent_ack = {"200": {"description": "received", "content": _json(_ref(schemas.TencentAck))}}
    aliyun_items = _json({"type": "array", "items": _ref(schemas.AliyunInbound)})
    tencent_body = _json(
        {
            "oneOf": [
                _ref(schemas.TencentInbound),
                {"type": "array", "items": _ref(schemas.TencentInbound)},
            ]
        }
    )
    reports = _json(
        {"type": "array", "items": {"type": "object", "description": "the provider's format"}}
    )
    twilio_sig: list[dict[str, list[str]]] = [{"twilioSignature": []}]
    out: dict[str, Any] = {
        "/webhooks/twilio": _hook(
            "Twilio inbound SMS",
            {form: {"schema": _ref(schemas.TwilioInbound)}},
            {"200": {"description": "received (empty TwiML)", "content": twiml}},
            security=twilio_sig,
        ),
        "/webhooks/twilio/status": _hook(
            "Twilio status callback (?ref=<our message id>)",
            {form: {"schema": _ref(schemas.TwilioStatus)}},
            {"204": {"description": "applied (or kept as unmatched)"}},
            security=twilio_sig,
        ),
        "/webhooks/generic": _hook(
            "Signed JSON inbound SMS from a gateway of our own",
            _json(_ref(schemas.GenericInbound)),
            {"200": {"description": "received", "content": _json(_ref(schemas.GenericAck))}},
            security=[{"genericSignature": []}],
        ),
    }
    for suffix, token in (("", False), ("/{token}", True)):
        out[f"/webhooks/aliyun{suffix}"] = {
            **_hook("Alibaba Cloud SmsUp push", aliyun_items, aliyun_ack, token=token),
            "get": {
                "summary": "Alibaba Cloud connectivity probe",
                **({"parameters": [_TOKEN]} if token else {}),
                "responses": {**aliyun_ack, **_errors(403)},
            },
        }
        out[f"/webhooks/aliyun/report{suffix}"] = _hook(
            "Alibaba Cloud SmsReport push", reports, aliyun_ack, token=token
        )
        out[f"/webhooks/tencent{suffix}"] = _hook(
            "Tencent Cloud reply callback", tencent_body, tencent_ack, token=token
        )
        out[f"/webhooks/tencent/status{suffix}"] = _hook(
            "Tencent Cloud delivery status push", reports, tencent_ack, token=token
        )
    return out


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smsbot API",
            "version": __version__,
            "description": "Refusals are JSON `Error` bodies. Webhooks without a signature"
            " (Alibaba Cloud, Tencent Cloud) are protected by a secret path token and/or an"
            " IP allow-list.",
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "metricsToken": {"type": "http", "scheme": "bearer"},
                "twilioSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Twilio-Signature",
                },
                "consoleSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "smsbot_console",
                    "description": "set by POST /api/console/login (or the /console pages)",
                },
                "csrfToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "the session's token (`csrf_token` of login and me)",
                },
                "genericSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Smsbot-Signature",
                    "description": "with X-Smsbot-Timestamp; README: the generic webhook",
                },
            },
        },
        "paths": {**_api(), **campaigns_api.paths(), **console_api.paths(), **_webhooks()},
    }


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(document())

"""The console's part of the OpenAPI document (``bot/openapi.py`` merges it): sign-in, the
case queue, a case's conversation, the composer, unmatched messages and the live feed. Every
body is a model of ``bot.console.schemas`` or ``bot.desk.view``; the tests check real answers
against them, so a lender's own desk can be built on this alone."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from bot.console import schemas as s
from bot.desk.view import CaseView, MessageVerdict
from bot.reports.model import Dashboard

REF = "#/components/schemas/{model}"
Security = list[dict[str, list[str]]]
SESSION: Security = [{"consoleSession": []}]
WRITES: Security = [{"consoleSession": [], "csrfToken": []}]

MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (s.LoginBody, "validation"),
    (s.CaseAction, "validation"),
    (s.ReassignBody, "validation"),
    (s.NoteBody, "validation"),
    (s.PromiseBody, "validation"),
    (s.PlanBody, "validation"),
    (s.HoldBody, "validation"),
    (s.ResolveBody, "validation"),
    (s.MessageBody, "validation"),
    (s.LinkBody, "validation"),
    (s.SignedIn, "serialization"),
    (s.AgentList, "serialization"),
    (s.CaseList, "serialization"),
    (s.CaseResult, "serialization"),
    (s.Queued, "serialization"),
    (s.UnmatchedList, "serialization"),
    (s.TemplateList, "serialization"),
    (CaseView, "serialization"),
    (MessageVerdict, "serialization"),
    (Dashboard, "serialization"),
]


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    return {"$ref": REF.format(model=model if isinstance(model, str) else model.__name__)}


def _json(model: type[BaseModel] | str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _error(status: int, description: str) -> dict[str, Any]:
    return {str(status): {"description": description, "content": _json("Error")}}


_ENDED = "the agent disabled or its password changed"
UNSIGNED = _error(401, f"not signed in, or the session ended (signed out, expired, {_ENDED})")
CSRF = _error(403, "X-CSRF-Token missing or not this session's: nothing was changed")
BAD = _error(400, "malformed body or query: the reason names the field")
DOWN = _error(503, "storage unavailable: retry later")
NOT_FOUND = _error(404, "no such account, or no open case with that case_id on it")
NOT_YOURS = _error(
    403,
    "the case is not held by the signed-in agent (claim it first), or the"
    " action is for supervisors; or X-CSRF-Token missing",
)
ACCOUNT = {"name": "account_id", "in": "path", "required": True, "schema": {"type": "string"}}
UNMATCHED = [
    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
    for n in ("provider", "msg_id")
]


def _read(summary: str, ok: type[BaseModel], *errors: dict[str, Any], **more: Any) -> Any:
    return {
        "get": {
            "summary": summary,
            "security": SESSION,
            "responses": {
                "200": {"description": "OK", "content": _json(ok)},
                **UNSIGNED,
                **{k: v for e in errors for k, v in e.items()},
                **DOWN,
            },
            **more,
        }
    }


def _write(
    summary: str,
    body: type[BaseModel] | None,
    ok: tuple[int, type[BaseModel] | None, str],
    *errors: dict[str, Any],
    params: list[dict[str, Any]] | None = None,
) -> Any:
    status, model, what = ok
    answer: dict[str, Any] = {"description": what}
    if model is not None:
        answer["content"] = _json(model)
    op: dict[str, Any] = {
        "summary": summary,
        "security": WRITES,
        "parameters": params if params is not None else [ACCOUNT],
        "responses": {
            str(status): answer,
            **BAD,
            **UNSIGNED,
            **NOT_YOURS,
            **{k: v for e in errors for k, v in e.items()},
            **DOWN,
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    return {"post": op}


_HELD = _error(409, "another agent holds the case (`holder` names them), or it moved on")
_QUEUED = (202, s.Queued, "queued on the account, applied in order with the borrower's replies")
_CASE = (200, s.CaseResult, "the case after the step")


_SUPERVISORS = _error(403, "the signed-in agent is not a supervisor")
_DATE = {"type": "string", "format": "date"}
_RANGE = [
    {"name": "from", "in": "query", "schema": _DATE, "description": "default: 13 days before to"},
    {"name": "to", "in": "query", "schema": _DATE, "description": "included; default: today"},
    {"name": "campaign", "in": "query", "schema": {"type": "string"}, "description": "id or name"},
]


def paths() -> dict[str, Any]:
    signed_in = {"200": {"description": "signed in", "content": _json(s.SignedIn)}}
    base = "/api/console/cases/{account_id}"
    return {
        "/api/console/login": {
            "post": {
                "summary": "Sign in: sets the session cookie; the agent and its CSRF token",
                "requestBody": {"required": True, "content": _json(s.LoginBody)},
                "responses": {
                    **signed_in,
                    **BAD,
                    **_error(401, "wrong name or password, or the agent is disabled"),
                    **_error(429, "too many attempts for this name or address: see Retry-After"),
                    **DOWN,
                },
            }
        },
        "/api/console/logout": {
            "post": {
                "summary": "Sign out: ends the session",
                "security": WRITES,
                "responses": {"204": {"description": "signed out"}, **UNSIGNED, **CSRF, **DOWN},
            }
        },
        "/api/console/me": {
            "get": {
                "summary": "The signed-in agent and the session's CSRF token",
                "security": SESSION,
                "responses": {**signed_in, **UNSIGNED, **DOWN},
            }
        },
        "/api/console/agents": _read(
            "Every agent, role and whether disabled (supervisors only)",
            s.AgentList,
            _error(403, "the signed-in agent is not a supervisor"),
        ),
        "/api/console/cases": _read(
            "Open cases: SLA passed first, then priority, then the longest waiting",
            s.CaseList,
            BAD,
            parameters=[
                {"name": "mine", "in": "query", "schema": {"type": "boolean"}},
                {"name": "unassigned", "in": "query", "schema": {"type": "boolean"}},
                {"name": "reason", "in": "query", "schema": {"type": "string", "maxLength": 64}},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
            ],
        ),
        base: _read(
            "The conversation as an agent sees it (masked): case, transcript with what the bot"
            " understood and each message's delivery state, promises, holds, next allowed send",
            CaseView,
            _error(404, "no such account"),
            parameters=[ACCOUNT],
        ),
        base + "/reveal": _write(
            "The same, with the borrower's name, number and ID numbers unmasked: audited",
            None,
            (200, CaseView, "unmasked"),
            _error(404, "no such account"),
        ),
        base + "/templates": _read(
            "The flow's templates filled in with this account's values (for the composer)",
            s.TemplateList,
            _error(404, "no such account"),
            parameters=[ACCOUNT],
        ),
        base + "/messages": _write(
            "Send the borrower a message (free text or a template) through the compliance"
            " gate: the verdict, with the rule ids and reasons of a block (nothing queued) or"
            " the time a deferred message goes",
            s.MessageBody,
            (200, MessageVerdict, "the gate's verdict"),
            NOT_FOUND,
        ),
        base + "/claim": _write(
            "Claim: of two agents at once exactly one wins", s.CaseAction, _CASE, NOT_FOUND, _HELD
        ),
        base + "/release": _write(
            "Release back to the queue (the holder, or a supervisor)",
            s.CaseAction,
            _CASE,
            NOT_FOUND,
            _HELD,
        ),
        base + "/reassign": _write(
            "Reassign to another agent (supervisors only)", s.ReassignBody, _CASE, NOT_FOUND
        ),
        base + "/notes": _write("Add a note to the case", s.NoteBody, _CASE, NOT_FOUND),
        base + "/promise": _write(
            "Record a promise (date, amount) agreed with the borrower",
            s.PromiseBody,
            _QUEUED,
            NOT_FOUND,
        ),
        base + "/plan": _write(
            "Record an instalment plan (replaces the one on record; [] clears it); given "
            "back at promised, the bot reminds of and checks each instalment in turn",
            s.PlanBody,
            _QUEUED,
            NOT_FOUND,
        ),
        base + "/hold": _write(
            "Set or clear a dispute or hardship hold", s.HoldBody, _QUEUED, NOT_FOUND
        ),
        base + "/resolve": _write(
            "Resolve: give back to the bot at a state, keep paused, or close",
            s.ResolveBody,
            _QUEUED,
            NOT_FOUND,
        ),
        "/api/console/unmatched": _read(
            "Messages from numbers no account has (masked)", s.UnmatchedList
        ),
        "/api/console/unmatched/{provider}/{msg_id}/link": _write(
            "Link the message to an account: it joins that account's conversation",
            s.LinkBody,
            _QUEUED,
            _error(404, "no such message (linked or dismissed already) or account"),
            params=UNMATCHED,
        ),
        "/api/console/unmatched/{provider}/{msg_id}/dismiss": _write(
            "Dismiss the message (kept, with who and when, for audit)",
            None,
            (204, None, "dismissed"),
            _error(404, "no such message (linked or dismissed already)"),
            _error(409, "dismissed or linked by someone else meanwhile"),
            params=UNMATCHED,
        ),
        "/api/console/dashboard": _read(
            "Results over a range of Beijing dates (supervisors only): the funnel reminded →"
            " delivered → replied → promised → paid per day and per campaign, intents of"
            " replies, promise-kept, opt-out and complaint rates, handoffs and SLA, per-template"
            " rates, the gate's blocks and deferrals by rule",
            Dashboard,
            BAD,
            _SUPERVISORS,
            parameters=_RANGE,
        ),
        "/api/console/dashboard.csv": {
            "get": {
                "summary": "The same figures as CSV (section, key, metric, value; UTF-8, a BOM)",
                "security": SESSION,
                "parameters": _RANGE,
                "responses": {
                    "200": {
                        "description": "a CSV file",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **BAD,
                    **UNSIGNED,
                    **_SUPERVISORS,
                    **DOWN,
                },
            }
        },
        "/api/console/events": {
            "get": {
                "summary": "Live updates (server-sent events): case_opened, case_claimed,"
                " case_released, case_reassigned, case_note, case_expired, case_resolved,"
                " inbound, unmatched; each event's data is a DeskEvent (ids and times, no"
                " personal data)",
                "security": SESSION,
                "responses": {
                    "200": {
                        "description": "an event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **UNSIGNED,
                },
            }
        },
    }

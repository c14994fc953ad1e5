"""The campaigns' part of the OpenAPI document (``bot/openapi.py`` merges it, as it does the
console's). Bodies are the models of ``bot.campaigns``; the tests check real answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from bot.campaigns.api import PATH, CampaignBody, CampaignList
from bot.campaigns.model import Campaign
from bot.campaigns.service import ImportReport
from bot.campaigns.status import CampaignStatus

REF = "#/components/schemas/{model}"
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (CampaignBody, "validation"),
    (ImportReport, "serialization"),
    (CampaignList, "serialization"),
    (CampaignStatus, "serialization"),
    (Campaign, "serialization"),
]
_ID = {
    "name": "campaign_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the campaign's id or its unique name",
}


def _json(model: type[BaseModel] | str) -> dict[str, Any]:
    name = model if isinstance(model, str) else model.__name__
    return {"application/json": {"schema": {"$ref": REF.format(model=name)}}}


def _error(status: int, description: str) -> dict[str, Any]:
    return {str(status): {"description": description, "content": _json("Error")}}


_UNAUTHORISED = _error(401, "missing or wrong API key")
_DOWN = _error(503, "storage unavailable: retry later")
_MISSING = _error(404, "no campaign with that id or name")


def _op(summary: str, ok: type[BaseModel], *errors: dict[str, Any], **more: Any) -> Any:
    responses = {"200": {"description": "OK", "content": _json(ok)}}
    for e in (*errors, _UNAUTHORISED, _DOWN):
        responses.update(e)
    return {"summary": summary, "security": BEARER, "responses": responses, **more}


def paths() -> dict[str, Any]:
    ndjson_line = "first line a CampaignBody, then one AccountRecord per line"
    upload = {
        "type": "object",
        "required": ["file", "name"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "CSV or XLSX"},
            "name": {"type": "string"},
            "flow": {"type": "string"},
            "start_at": {"type": "string", "format": "date-time"},
            "rate": {"type": "number"},
        },
    }
    create = _op(
        "create a campaign (or import into the one of that name) and import its accounts",
        ImportReport,
        _error(400, "malformed first line, file or field: the reason names it"),
        _error(409, "the campaign is cancelled"),
        _error(413, "body too large: import it in parts"),
        _error(415, "file uploads need the file reader"),
        requestBody={
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string", "description": ndjson_line}},
                "multipart/form-data": {"schema": upload},
            },
        },
    )
    moves = {
        f"{PATH}/{{campaign_id}}/{action}": {
            "post": _op(
                f"{action} the campaign's release",
                Campaign,
                _MISSING,
                _error(409, f"the campaign's state does not allow {action}"),
                parameters=[_ID],
            )
        }
        for action in ("pause", "resume", "cancel")
    }
    return {
        PATH: {"post": create, "get": _op("every campaign", CampaignList)},
        f"{PATH}/{{campaign_id}}": {
            "get": _op(
                "counts per stage: released, deferred (by rule), sent, replies by intent, …",
                CampaignStatus,
                _MISSING,
                parameters=[_ID],
            )
        },
        **moves,
    }

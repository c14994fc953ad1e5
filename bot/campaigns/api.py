"""The campaigns' JSON API (Bearer $SMSBOT_API_KEY, as bot.api): create-and-import, list,
status, pause, resume, cancel. Bad input is a 4xx naming the reason, never a 500.

``POST /api/campaigns`` takes either NDJSON (``application/x-ndjson``: the first line is the
campaign ``{"name", "flow", "start_at", "rate"}``, then one account object per line) or a
multipart upload (a ``file`` field read by bot.campaigns.rows, with ``name``, ``flow``,
``start_at``, ``rate`` fields). A name that exists imports into that campaign (posting the
same file twice adds nobody twice).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator

from aiohttp import BodyPartReader, web
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from bot.api import StrictBody, account_row, require_key
from bot.campaigns import rows
from bot.campaigns.model import (
    MAX_RATE,
    Campaign,
    CampaignConflict,
    CampaignError,
    CampaignNotFound,
)
from bot.campaigns.rows import RowError
from bot.campaigns.service import Campaigns, ImportReport, Row
from bot.context import CAMPAIGNS
from bot.transport.inbound import WebhookError
from common.errors import SmsbotError

PATH = "/api/campaigns"


class CampaignBody(StrictBody):
    name: str = Field(min_length=1, max_length=80)
    flow: str = "collections"
    start_at: AwareDatetime | None = Field(default=None, description="default: now")
    rate: float = Field(default=10.0, gt=0, le=MAX_RATE, description="accounts per second")


class CampaignList(BaseModel):
    campaigns: list[Campaign]


def routes() -> list[web.RouteDef]:
    return [
        web.post(PATH, post_campaign),
        web.get(PATH, list_campaigns),
        web.get(PATH + "/{campaign_id}", get_status),
        web.post(PATH + "/{campaign_id}/pause", post_move),
        web.post(PATH + "/{campaign_id}/resume", post_move),
        web.post(PATH + "/{campaign_id}/cancel", post_move),
    ]


def _refusal(exc: SmsbotError) -> WebhookError:
    if isinstance(exc, CampaignNotFound):
        return WebhookError(404, str(exc))
    if isinstance(exc, CampaignConflict):
        return WebhookError(409, str(exc))
    return WebhookError(400, str(exc))  # e.g. an unknown flow


def _reason(exc: ValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    return field, first["msg"]


def ndjson_rows(lines: list[bytes], first_row: int = 2) -> Iterator[Row]:
    for n, line in enumerate(lines, start=first_row):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise TypeError
            yield n, account_row(data)  # as POST /api/accounts: a mainland mobile, E.164
        except ValidationError as exc:  # first: it is a ValueError too
            yield n, RowError(n, *_reason(exc))
        except (ValueError, TypeError):
            yield n, RowError(n, None, "not a JSON object")


async def _import(service: Campaigns, head: CampaignBody, rows: Iterable[Row]) -> ImportReport:
    try:
        campaign = await service.store.campaigns.find(head.name)
        if campaign is None:
            campaign = await service.create(head.name, head.flow, head.start_at, head.rate)
        return await service.import_rows(campaign.id, rows)
    except SmsbotError as exc:
        raise _refusal(exc) from exc


async def post_campaign(request: web.Request) -> web.Response:
    require_key(request)
    service = request.app[CAMPAIGNS]
    if request.content_type.startswith("multipart/"):
        report = await _multipart(request, service)
    elif request.content_type == "application/x-www-form-urlencoded":
        # A form without a file (an HTML form missing enctype, or no file chosen).
        raise WebhookError(400, "file: missing (send multipart/form-data with a 'file' field)")
    else:
        body = await request.read()
        header, _, rest = body.partition(b"\n")
        try:
            head = CampaignBody.model_validate_json(header)
        except ValidationError as exc:
            reason = ": ".join(filter(None, _reason(exc)))
            raise WebhookError(400, f"first line: {reason}") from exc
        report = await _import(service, head, ndjson_rows(rest.split(b"\n")))
    return web.json_response(report.model_dump(mode="json"))


async def _multipart(request: web.Request, service: Campaigns) -> ImportReport:
    fields: dict[str, str] = {}
    content: bytes | None = None
    filename: str | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                filename, content = part.filename, await part.read()
            elif part.name:
                fields[part.name] = await part.text()
    except (ValueError, LookupError, AssertionError) as exc:
        # No boundary, a part's bytes not in its charset: the body is not a readable form.
        raise WebhookError(400, f"not a readable multipart/form-data body: {exc}") from exc
    if content is None:
        raise WebhookError(400, "file: missing (a multipart field named 'file')")
    try:
        head = CampaignBody.model_validate(fields)
    except ValidationError as exc:
        raise WebhookError(400, ": ".join(filter(None, _reason(exc)))) from exc
    try:
        read = rows.read_accounts(io.BytesIO(content), filename=filename, flow=head.flow)
        return await _import(service, head, read)
    except rows.FileProblem as exc:
        raise WebhookError(400, f"file: {exc}") from exc


async def list_campaigns(request: web.Request) -> web.Response:
    require_key(request)
    found = await request.app[CAMPAIGNS].list_all()
    return web.json_response(CampaignList(campaigns=found).model_dump(mode="json"))


async def get_status(request: web.Request) -> web.Response:
    require_key(request)
    try:
        status = await request.app[CAMPAIGNS].status(request.match_info["campaign_id"])
    except CampaignError as exc:
        raise _refusal(exc) from exc
    return web.json_response(status.model_dump(mode="json"))


async def post_move(request: web.Request) -> web.Response:
    require_key(request)
    service = request.app[CAMPAIGNS]
    ref = request.match_info["campaign_id"]
    action = request.path.rsplit("/", 1)[-1]
    try:
        if action == "pause":
            campaign = await service.pause(ref)
        elif action == "resume":
            campaign = await service.resume(ref)
        else:
            campaign = await service.cancel(ref)
    except CampaignError as exc:
        raise _refusal(exc) from exc
    return web.json_response(campaign.model_dump(mode="json"))

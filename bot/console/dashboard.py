"""The results dashboard (supervisors only): the page ``/console/dashboard``, its figures as
JSON (``/api/console/dashboard``) and as CSV (``/api/console/dashboard.csv``), all from one
reading (``bot.reports.collect``) for a range of Beijing dates and optionally one campaign.
The page's charts are drawn by ``static/dashboard.js`` with the vendored Chart.js
(``static/vendor``): served from here, no CDN."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from bot.console.auth import API_PREFIX, refuse, require_role
from bot.console.pages import STATIC, page
from bot.context import CLOCK, STORE
from bot.reports import collect, render
from bot.reports.model import Dashboard
from common.errors import UsageError

API = API_PREFIX + "dashboard"
VENDOR = STATIC / "vendor"


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/dashboard", dashboard_page),
        web.get(API, dashboard_json),
        web.get(API + ".csv", dashboard_csv),
        web.get("/console/static/dashboard.js", _static("dashboard.js")),
        web.get("/console/static/vendor/chart.umd.min.js", _static("vendor/chart.umd.min.js")),
    ]


async def figures(request: web.Request) -> Dashboard:
    """The figures the query asks for; UsageError (a 400) for a bad date or campaign."""
    q = request.query
    unknown = set(q) - {"from", "to", "campaign"}
    if unknown:
        raise UsageError(f"unknown query parameter(s): {', '.join(sorted(unknown))[:100]}")
    store, now = request.app[STORE], request.app[CLOCK].now()
    start, end = collect.parse_range(q.get("from") or None, q.get("to") or None, now)
    ref = q.get("campaign") or None
    campaign = await collect.find_campaign(store, ref) if ref else None
    return await collect.dashboard(store, start, end, now, campaign)


async def _answer(
    request: web.Request, write: Callable[[Dashboard], Awaitable[web.Response]]
) -> web.Response:
    """``write(figures)``, or the 400 that says what in the query is wrong."""
    try:
        d = await figures(request)
    except UsageError as exc:
        return refuse(request, 400, str(exc))
    return await write(d)


@require_role("supervisor")
async def dashboard_page(request: web.Request) -> web.Response:
    async def write(d: Dashboard) -> web.Response:
        query = request.query_string
        context = {
            "d": d,
            "data": render.data_json(d),
            "campaigns": await request.app[STORE].campaigns.list_all(),
            "csv_href": f"{API}.csv?{query}" if query else f"{API}.csv",
        }
        return await page(request, "dashboard.html", "dashboard", context)

    return await _answer(request, write)


@require_role("supervisor")
async def dashboard_json(request: web.Request) -> web.Response:
    async def write(d: Dashboard) -> web.Response:
        return web.Response(text=d.model_dump_json(), content_type="application/json")

    return await _answer(request, write)


@require_role("supervisor")
async def dashboard_csv(request: web.Request) -> web.Response:
    async def write(d: Dashboard) -> web.Response:
        name = f"smsbot-dashboard-{d.start}-{d.end}.csv"
        return web.Response(
            text=render.to_csv(d),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
        )

    return await _answer(request, write)


def _static(name: str) -> web.Handler:  # type: ignore[name-defined]
    path: Path = STATIC / name

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return serve

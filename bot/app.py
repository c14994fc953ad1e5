"""``create_app(settings)``: the aiohttp application, its resources and routes. No globals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from bot import api, openapi, reload, simulator, webhooks
from bot.campaigns import api as campaigns_api
from bot.campaigns.service import Campaigns
from bot.clock import Clock
from bot.compliance.gate import Gate
from bot.console import app as console
from bot.context import (
    API_KEY,
    CAMPAIGNS,
    CLOCK,
    DESK,
    DESK_SERVICE,
    FLOWS,
    GATE,
    NLU,
    PIPELINE,
    SENDER,
    SETTINGS,
    STORE,
)
from bot.desk.config import DeskSettings
from bot.desk.service import Desk
from bot.loops import run_loops
from bot.outbound import setup as outbound_setup
from bot.outbound.dispatch import Dispatcher, Routing
from bot.outbound.sender import Sender
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.storage.agents import AgentStore
from bot.storage.base import Store, StoreUnavailable
from bot.storage.memory import MemoryStore
from bot.telemetry import endpoint, metrics
from bot.transport.inbound import WebhookError
from dialogs.registry import Registry
from intents import Understander

log = logging.getLogger(__name__)
BATCH_PATH = "/api/accounts"  # routes with their own body limit (max_batch_bytes)
BATCH_PATHS = frozenset({BATCH_PATH, campaigns_api.PATH})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SAMPLE_EVERY_S = 5.0  # the store's backlog for /metrics: two reads of sorted sets


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    nlu: Understander | None = None,
    clock: Clock | None = None,
    agents: AgentStore | None = None,
) -> web.Application:
    """The service. ``store``, ``nlu``, ``clock`` and ``agents`` may be injected (tests,
    benchmarks)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[endpoint.observe, _errors, _body_in_time],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[API_KEY] = (
        settings.api_key.get_secret_value() if settings.api_key else secrets.token_urlsafe(24)
    )
    app.cleanup_ctx.append(_store_ctx(store))
    app.cleanup_ctx.append(_nlu_ctx(nlu))
    app.cleanup_ctx.append(_gate_ctx)
    app.cleanup_ctx.append(_flows_ctx)  # after the gate: flows are validated by its rules
    app.cleanup_ctx.append(_desk_ctx)
    app.cleanup_ctx.append(_sender_ctx)
    app.cleanup_ctx.append(_pipeline_ctx)
    app.cleanup_ctx.append(reload.reload_ctx)
    app.cleanup_ctx.append(endpoint.listener_ctx)
    app.add_routes(webhooks.routes())
    app.add_routes(api.routes())
    app.add_routes(campaigns_api.routes())
    app.add_routes(reload.routes())
    app.add_routes(openapi.routes())
    app.add_routes(endpoint.routes())
    console.setup(app, settings, agents)  # after the store: sign-in limits use it
    if settings.demo:
        app.add_routes(simulator.routes())
    return app


def _store_ctx(injected: Store | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if injected is not None:
            app[STORE] = injected
        elif settings.redis_url:
            from bot.storage.redis import RedisStore

            app[STORE] = RedisStore.from_url(settings.redis_url)
        else:
            app[STORE] = MemoryStore()
        yield
        if injected is None:
            await app[STORE].close()

    return ctx


def _nlu_ctx(injected: Understander | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # Loading reads files and may train (11-20 s): keep the loop free meanwhile, and say so,
        # or a start after a data edit looks hung.
        app[NLU] = (
            injected
            if injected is not None
            else await asyncio.to_thread(Understander.load, announce=log.info)
        )
        yield

    return ctx


async def _flows_ctx(app: web.Application) -> AsyncIterator[None]:
    # The gate's own content rules validate every template, so a flow that loads is not
    # blocked for its wording at send time.
    app[FLOWS] = await asyncio.to_thread(Registry.load, app[SETTINGS].flows_dir, app[GATE].policy)
    yield


async def _desk_ctx(app: web.Application) -> AsyncIterator[None]:
    # A bad config/desk.yaml stops the start, naming file, line and field.
    app[DESK] = await asyncio.to_thread(DeskSettings.load, app[SETTINGS].desk_file)
    yield


async def _gate_ctx(app: web.Application) -> AsyncIterator[None]:
    app[GATE] = await asyncio.to_thread(Gate.load, app[SETTINGS].compliance_file)
    yield


async def _sender_ctx(app: web.Application) -> AsyncIterator[None]:
    """The carriers and this process's sender; refused at start when misconfigured."""
    settings = app[SETTINGS]
    outbound_setup.check(settings, app[FLOWS])
    for warning in outbound_setup.warnings(settings):
        log.warning("%s", warning)
    real = [c for c in outbound_setup.carriers_in_use(settings) if c != "sandbox"]
    # One HTTP client session for every carrier: pooled connections, no blocking SDK.
    # aiohttp's default pool holds 100 connections: at 200 ms a call that capped sending at
    # ~490/s below SMSBOT_SEND_CONCURRENCY (bench/outbound.py). The pool follows the setting.
    session = None
    if real:
        per_carrier = settings.send_concurrency
        connector = aiohttp.TCPConnector(limit=per_carrier * len(real), limit_per_host=per_carrier)
        session = aiohttp.ClientSession(connector=connector)
    carriers = outbound_setup.build(settings, app[STORE], session, app[CLOCK])

    def kick(account_id: str) -> None:  # a delivery_failed event queued for the conversation
        if PIPELINE in app:
            app[PIPELINE].kick(account_id)

    sender = Sender(
        app[STORE], carriers, app[CLOCK], outbound_setup.policy(settings), on_event=kick
    )
    app[SENDER] = sender
    loop = asyncio.create_task(sender.run(settings.sender_poll_s))
    yield
    await sender.close()  # after the pipeline (cleanup runs in reverse): nothing new comes
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    for carrier in carriers.values():
        await carrier.aclose()
    if session is not None:
        await session.close()


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = app[STORE]
    routing = Routing(settings.provider, settings.provider_by_pack)
    dispatcher = Dispatcher(store, app[GATE], app[FLOWS], app[CLOCK], app[SENDER], routing)
    pipeline = Pipeline(
        store,
        app[NLU],
        app[FLOWS],
        dispatcher,
        app[CLOCK],
        app[GATE],
        lock_ttl_ms=settings.lock_ttl_ms,
        paused=settings.pause_processing,
        desk=app[DESK],
    )
    app[PIPELINE] = pipeline
    if settings.pause_processing:
        # Said once a start: a paused service answers 200 to every webhook, so nothing else
        # shows that replies wait (an integrator's trial: the pause was silent).
        log.warning(
            "processing paused (SMSBOT_PAUSE_PROCESSING): replies are accepted and stored, not"
            " processed; another service on the same store still processes them"
        )
    app[DESK_SERVICE] = Desk(store, pipeline.submit, app[FLOWS], app[CLOCK], app[GATE])
    release_every = settings.campaign_release_interval_s
    campaigns = Campaigns(
        store,
        pipeline.submit,
        app[FLOWS],
        app[CLOCK],
        interval_s=release_every,
        backlog=lambda: pipeline.drains_waiting,
    )
    app[CAMPAIGNS] = campaigns
    if settings.demo:
        from bot.demo import load_demo

        await load_demo(app)
    try:
        recovered = await pipeline.recover()  # acknowledged but unprocessed before a crash
        if recovered:
            log.info("draining %d account queue(s) found at start-up", recovered)
    except StoreUnavailable as exc:
        log.warning("store unavailable at start-up (%s); recovery retries in the background", exc)

    async def sample() -> None:  # /metrics' backlog gauges
        metrics.sample_backlog(await store.backlog(app[CLOCK].now()), pipeline.drains_waiting)

    loops = asyncio.create_task(
        run_loops(
            pipeline,
            settings.timer_interval_s,
            settings.recovery_interval_s,
            settings.desk_sla_interval_s,
            steps=[(release_every, campaigns.release_due), (_SAMPLE_EVERY_S, sample)],
        )
    )
    yield
    await pipeline.close()  # finish in-flight work before the store closes
    loops.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loops


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal is JSON with a reason; a store outage is a 503 so providers retry."""
    try:
        return await handler(request)
    except WebhookError as exc:
        return _error(exc.status, exc.reason, **exc.fields)
    except StoreUnavailable as exc:
        # A WARNING once per outage comes from the Redis client; one per request would bury it.
        log.debug("store unavailable: %s", exc)
        return _error(503, "storage unavailable, retry later")
    except web.HTTPRequestEntityTooLarge:
        settings = request.app[SETTINGS]
        if request.path == BATCH_PATH:
            too_large = f"more than {settings.max_batch_bytes} bytes"
            return _error(413, api.batch_too_large(too_large))
        if request.path in BATCH_PATHS:  # a campaign's file: send it in parts
            limit = settings.max_batch_bytes
            return _error(413, f"body too large (limit {limit} bytes): import it in parts")
        return _error(413, f"body too large (limit {settings.max_body_bytes} bytes)")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise


@web.middleware
async def _body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The whole body within ``body_timeout_s`` of the headers, or 408 and the connection
    closed. Read here (handlers' ``read()`` then returns it at once), so no handler can be held
    by a client that trickles its body; a body that is already all here costs no timer."""
    settings = request.app[SETTINGS]
    if request.path in BATCH_PATHS and request.method == "POST":
        request = request.clone(client_max_size=settings.max_batch_bytes)
    if request.body_exists and not request.content.is_eof():
        timeout = settings.body_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await request.read()
        except TimeoutError:
            response = _error(408, f"request body not received within {timeout:g} s")
            response.force_close()
            # Sent now and the connection closed: left to aiohttp, the rest of the body would
            # still be read for its lingering time (10 s) before the connection closes.
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()
            return response
    return await handler(request)


def _error(status: int, reason: str, **fields: str) -> web.Response:
    return web.json_response({"error": reason, "status": status, **fields}, status=status)

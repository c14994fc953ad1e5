"""Live updates for the console: ``GET /api/console/events``, the desk's feed
(``bot.storage.desk_events``) as server-sent events (aiohttp-sse), across processes when the
store is Redis (a stream every process reads).

Each event is ``event: <kind>`` (case_opened, case_claimed, case_released, case_reassigned,
case_note, case_expired, case_resolved, inbound) with the :class:`DeskEvent` as JSON: ids,
times and who acted, never a borrower's name, number or words, so a screen re-reads what it
shows through the API, which masks. The browser's EventSource reconnects by itself after a
dropped connection; the page then re-reads, so an event lost meanwhile costs nothing.

A stream outlives the request that opened it, so it re-checks the agent every
``RECHECK_S``: a session that ended (disabled, password changed) stops receiving. Every
open stream is closed when the service shuts down, so a restart is not held for the length
of aiohttp's shutdown timeout by screens that never hang up.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from bot.console.auth import API_PREFIX, current_agent
from bot.context import AGENTS, DESK_SERVICE

EVENTS = API_PREFIX + "events"
PING_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
RECHECK_S = 60.0
STREAMS: web.AppKey[weakref.WeakSet[EventSourceResponse]] = web.AppKey("console_streams")


def setup(app: web.Application) -> None:
    app[STREAMS] = weakref.WeakSet()
    app.on_shutdown.append(_close_streams)
    app.router.add_get(EVENTS, events)


async def events(request: web.Request) -> web.StreamResponse:
    agent = current_agent(request)
    async with sse_response(request, ping_interval=PING_S) as stream:
        request.app[STREAMS].add(stream)
        # The first event tells the page the stream is live: it re-reads once, so anything
        # that happened while it was connecting is on screen too.
        await stream.send("{}", event="ready")
        tasks = [
            asyncio.create_task(_forward(request, stream)),
            asyncio.create_task(_watch(request, stream, agent.name, agent.generation)),
        ]
        try:
            await stream.wait()  # the screen went away, the session ended, or shutdown
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return stream


async def _forward(request: web.Request, stream: EventSourceResponse) -> None:
    feed = request.app[DESK_SERVICE].store.desk.events
    try:
        async for event in feed.subscribe():
            await stream.send(event.model_dump_json(), event=event.kind)
    except (ConnectionResetError, RuntimeError):
        pass  # written after the screen went away
    finally:
        stream.stop_streaming()


async def _watch(request: web.Request, stream: EventSourceResponse, name: str, gen: int) -> None:
    """Ends the stream once the agent's session would no longer stand."""
    while True:
        await asyncio.sleep(RECHECK_S)
        agent = await request.app[AGENTS].get(name)
        if agent is None or agent.disabled or agent.generation != gen:
            stream.stop_streaming()
            return


async def _close_streams(app: web.Application) -> None:
    streams: weakref.WeakSet[EventSourceResponse] = app[STREAMS]
    for stream in list(streams):
        with contextlib.suppress(Exception):
            stream.stop_streaming()

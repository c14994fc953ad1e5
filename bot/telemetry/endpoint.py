"""``/metrics`` and the middleware every request goes through (its latency, its request id).

``/metrics`` is protected by its own token or by where it listens, never open by default:
- ``SMSBOT_METRICS_TOKEN``: the service's port answers ``/metrics`` to
  ``Authorization: Bearer <token>`` (Prometheus' ``authorization`` setting);
- ``SMSBOT_METRICS_PORT`` (and ``SMSBOT_METRICS_HOST``, default 127.0.0.1): a listener of its
  own that serves nothing but ``/metrics``, on an interface only the scraper reaches.
Neither set: ``/metrics`` answers 403 saying which to set. A loopback address is no proof of
a trusted client: behind a reverse proxy on the same machine every request comes from it.
"""

from __future__ import annotations

import hmac
import itertools
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from structlog.contextvars import bind_contextvars

from bot.context import SETTINGS
from bot.privacy import mask_text
from bot.telemetry import metrics

PATH = "/metrics"
REQUEST_ID = "X-Request-ID"
# A caller's id is kept when it looks like one (a proxy's or a load balancer's), so their
# logs and ours join; anything else is replaced, never echoed into a log line.
_CALLERS_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PREFIX = secrets.token_hex(4)  # this process's (a restart or another worker: another)
_serial = itertools.count(1)
_CLASS = {n: f"{n}xx" for n in range(1, 6)}
_PID_FILE = re.compile(r"_(\d+)\.db$")


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: times every request by route, and binds its request id to every log line
    written while it runs — and in the tasks it starts, e.g. the drain of a reply
    (bot/pipeline.py), which copy its context."""
    given = request.headers.get(REQUEST_ID)
    # Made from the process's prefix and a counter: unique, and a tenth of a random token's
    # cost. Only this middleware binds in a request's task (a keep-alive connection's
    # requests run in one task, one at a time): each request's id replaces the last.
    # A phone or ID number is no request id (it would be masked in our lines, not in theirs).
    if given and _CALLERS_ID.fullmatch(given) and mask_text(given) == given:
        rid = given
    else:
        rid = f"{_PREFIX}{next(_serial):x}"
    bind_contextvars(request_id=rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        # The route's pattern, not its path: a webhook's token or an account id is no label.
        route = resource.canonical if resource is not None else "unmatched"
        timer = metrics.child(metrics.HTTP_SECONDS, route, request.method, _CLASS[status // 100])
        timer.observe(time.perf_counter() - started)


def routes() -> list[web.RouteDef]:
    return [web.get(PATH, _metrics)]


async def _metrics(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token is None:
        raise web.HTTPForbidden(
            reason="metrics are off on this port: set SMSBOT_METRICS_TOKEN (and scrape with "
            "'Authorization: Bearer <token>') or SMSBOT_METRICS_PORT (a listener of their own)"
        )
    expected = f"Bearer {token.get_secret_value()}".encode()
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
        raise web.HTTPUnauthorized(reason="metrics need 'Authorization: Bearer <token>'")
    return exposition()


def exposition() -> web.Response:
    return web.Response(
        body=generate_latest(registry()), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def registry() -> CollectorRegistry:
    """This process's metrics, or every worker's when they share a directory of files."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return metrics.REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    # process_* and python_gc_* would describe whichever worker answered, jumping between
    # them from one scrape to the next (read as counter resets): every worker's, by pid.
    combined.register(PLATFORM_COLLECTOR)
    combined.register(Workers(Path(directory)))
    return combined


class Workers(Collector):
    """CPU and resident memory of every live process that writes to the metrics directory
    (its files end in ``_<pid>.db``), read from /proc, labelled by pid."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "smsbot_worker_cpu_seconds", "CPU time of each worker process", labels=["pid"]
        )
        rss = GaugeMetricFamily(
            "smsbot_worker_resident_memory_bytes", "Resident memory of each worker", labels=["pid"]
        )
        pids = {m[1] for f in self.directory.glob("*.db") if (m := _PID_FILE.search(f.name))}
        tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
        for pid in sorted(pids):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # a worker that died: its counters stay in the sums, not its process
            fields = stat.rpartition(")")[2].split()  # after the command's name
            cpu.add_metric([pid], (int(fields[11]) + int(fields[12])) / tick)
            rss.add_metric([pid], int(fields[21]) * page)
        yield cpu
        yield rss


def metrics_app() -> web.Application:
    """The listener of SMSBOT_METRICS_PORT: ``/metrics`` and nothing else, no token."""

    async def handler(request: web.Request) -> web.Response:
        return exposition()

    app = web.Application()
    app.add_routes([web.get(PATH, handler)])
    return app


async def listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """SMSBOT_METRICS_PORT's listener for the application's lifetime. Every worker of
    ``smsbot serve --workers N`` binds it (SO_REUSEPORT); any of them answers for all."""
    settings = app[SETTINGS]
    if settings.metrics_port is None:
        yield
        return
    runner = web.AppRunner(metrics_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.metrics_host, settings.metrics_port, reuse_port=True)
    await site.start()
    yield
    await runner.cleanup()

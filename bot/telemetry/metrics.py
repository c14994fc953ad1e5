"""The service's Prometheus metrics (prometheus-client), every one defined here.

Metrics are process-wide facts, like logging's loggers: they live in this module's registry,
as prometheus-client intends, rather than in an application object (tests look at how a value
moves, not at its absolute value). With several processes (``smsbot serve --workers N``) the
parent sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start: prometheus-client then keeps
every value in a file of that directory and ``/metrics`` sums the processes' files, whichever
worker answers (bot/telemetry/endpoint.py).

Where each metric is counted, and why there:
- replies by provider and intent, handoffs by reason, events by kind: from an event's audit
  entries once its commit succeeded (``events_committed``), so a retried commit counts once;
- outbound states by carrier: every record step that the store applied (``transition``,
  called by :meth:`bot.storage.base.Store.move`), so each state entered counts once;
- gate verdicts by rule: where the gate decides (bot/outbound/dispatch.py);
- time per stage: NLU (bot/interpret.py), gate (dispatch), the store's commit (pipeline);
- HTTP latency by route: a middleware (bot/telemetry/endpoint.py);
- Redis errors: the Redis client (bot/storage/resp.py);
- queue depth and age: sampled every few seconds by the background loop (``sample_backlog``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

if TYPE_CHECKING:
    from bot.records import AuditEntry
    from bot.storage.base import Transition

REGISTRY = CollectorRegistry(auto_describe=True)
# The process's CPU, memory and file descriptors, the interpreter's GC: the default
# registry's collectors, registered here too (with several workers they describe the worker
# that answers the scrape; the files hold only the service's own metrics).
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

# Fast requests (webhooks, API) are well under 10 ms; a campaign import or a report can take
# seconds.
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300)

INBOUND = Counter(
    "smsbot_inbound_messages",
    "Borrowers' replies processed (committed), by provider and primary intent",
    ["provider", "intent"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "smsbot_events",
    "Queued events processed (committed), by kind: inbound, tick, start, payment, agent, ...",
    ["kind"],
    registry=REGISTRY,
)
EVENT_ERRORS = Counter(
    "smsbot_event_errors",
    "Events whose processing raised (audited as errors; the conversation was left as it was)",
    registry=REGISTRY,
)
HANDOFFS = Counter(
    "smsbot_handoffs",
    "Conversations handed to a person, by the flow's reason",
    ["reason"],
    registry=REGISTRY,
)
OUTBOUND = Counter(
    "smsbot_outbound_transitions",
    "Outbound messages entering a state (deferred, blocked, reserved, sending, sent, delivered,"
    " undelivered, failed, ...), by carrier ('none' before one was chosen)",
    ["carrier", "state"],
    registry=REGISTRY,
)
GATE = Counter(
    "smsbot_gate_decisions",
    "Compliance gate verdicts, by verdict and rule id ('' when no rule applied)",
    ["verdict", "rule"],
    registry=REGISTRY,
)
TIMERS_FIRED = Counter(
    "smsbot_timers_fired",
    "Conversation timers fired (counted where they fire: once, however many processes scan)",
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    "smsbot_redis_errors",
    "Redis calls that failed: unavailable (connection, timeout, refusing writes) or an error reply",
    ["kind"],
    registry=REGISTRY,
)
REDIS_RESENT = Counter(
    "smsbot_redis_resent",
    "Redis Cluster commands sent again because the reply proved they had not run "
    "(moved, ask, tryagain, noscript: a reshard, a fail-over, scripts flushed)",
    ["kind"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "smsbot_http_request_duration_seconds",
    "HTTP requests by route, method and status class",
    ["route", "method", "status"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "smsbot_stage_duration_seconds",
    "Time per message in each stage: nlu (understanding a reply), gate (one decision), store"
    " (an event's commit)",
    ["stage"],
    buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)
EVENT_LATENCY = Histogram(
    "smsbot_event_latency_seconds",
    "From an event's arrival (a reply's receipt by the webhook) to its commit, by kind",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
# The store's backlog is the same whichever process samples it: the most recent sample counts.
BACKLOG = Gauge(
    "smsbot_backlog",
    "Work waiting in the store: timers due and sends due (retries, reserved, to reconcile)",
    ["queue"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
BACKLOG_AGE = Gauge(
    "smsbot_backlog_oldest_seconds",
    "How long the oldest due item of each backlog has been due",
    ["queue"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
RECOVERY_SECONDS = Gauge(
    "smsbot_recovery_round_seconds",
    "How long this process's last recovery round (a scan of the store for queues and outboxes"
    " a crash left) took; the next waits at least 19 times as long (bot/loops.py)",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
DRAINS_WAITING = Gauge(
    "smsbot_drains_waiting",
    "Accounts with queued events waiting for one of this process's drain slots",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)

# Children bound once: .labels() takes a lock and builds a key (2-3 µs, bench/telemetry.py);
# a dict of children costs a tenth of that, on every message.
NLU_SECONDS = STAGE_SECONDS.labels("nlu")
GATE_SECONDS = STAGE_SECONDS.labels("gate")
STORE_SECONDS = STAGE_SECONDS.labels("store")
_children: dict[tuple[Any, ...], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, made once per process."""
    key = (metric, *labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def events_committed(kind: str, audit: Sequence[AuditEntry], latency_s: float | None) -> None:
    """One event's commit: its kind, and what its audit entries say happened."""
    child(EVENTS, kind).inc()
    if latency_s is not None and latency_s >= 0:
        child(EVENT_LATENCY, kind).observe(latency_s)
    provider = ""
    for entry in audit:
        match entry.kind:
            case "inbound":
                provider = str(entry.detail.get("provider", ""))
            case "understood":
                child(INBOUND, provider, str(entry.detail.get("intent", ""))).inc()
            case "handoff":
                child(HANDOFFS, str(entry.detail.get("reason", "unknown"))).inc()
            case "error":
                EVENT_ERRORS.inc()


def transition(t: Transition) -> None:
    """An outbound record's step, applied by the store."""
    child(OUTBOUND, t.record.carrier or "none", t.record.state).inc()


def gate_decision(verdict: str, rules: Iterable[str]) -> None:
    counted = False
    for rule in rules:
        child(GATE, verdict, rule).inc()
        counted = True
    if not counted:
        child(GATE, verdict, "").inc()


def sample_backlog(counts: dict[str, tuple[int, float]], drains_waiting: int) -> None:
    """``counts``: per backlog, (items due, seconds the oldest has been due)."""
    for queue, (n, age) in counts.items():
        BACKLOG.labels(queue).set(n)
        BACKLOG_AGE.labels(queue).set(age)
    DRAINS_WAITING.set(drains_waiting)

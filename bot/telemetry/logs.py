"""Log lines: JSON for a log collector or key=value for a person (structlog), with personal
data masked in every line.

The code logs through the standard library (``logging.getLogger(__name__)``), as do aiohttp
and the libraries; structlog's ``ProcessorFormatter`` turns every record, ours or theirs, into
one line with the same fields: ``timestamp`` (UTC), ``level``, ``logger``, ``event`` (the
message), the ids bound to the context (``request_id`` of the HTTP request, and in the tasks
it starts; ``account`` and ``event_id`` while a drain processes an account's queue,
``message_id`` while a message is sent), and
``exception`` with its traceback.

Masking (《个人信息保护法》): callers mask what they know is personal (``bot.privacy``); then
every string of every line goes through :func:`bot.privacy.mask_text` here, so a phone, ID or
card number that reaches a log line unmasked by way of an exception text, a library's message
or a forgotten call site is masked anyway. A test scans every line the test suite logs.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from structlog.typing import EventDict, WrappedLogger

from bot.privacy import mask_text

# Our own and aiohttp's records say everything at INFO; these libraries are chatty below
# WARNING and say nothing an operator acts on.
_QUIET = ("jieba", "transitions", "asyncio", "aiohttp.server")


def mask_personal(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Masks phone, ID and card numbers in every string of the line, however deep (aiohttp's
    access log nests the request's headers)."""
    for key, value in event.items():
        event[key] = _masked(value)
    return event


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def _pid(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # With `smsbot serve --workers N` several processes write one stream: which one said it.
    event["pid"] = os.getpid()
    return event


class BadRequests(logging.Filter):
    """aiohttp logs a malformed request (a bad header, a bad Content-Length) as an ERROR with
    a traceback and a piece of the client's bytes: anyone could fill the log with alerts. It
    is the client's error: one WARNING line, no traceback (the 400 was answered)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "bad HTTP request: %s", (type(exc).__name__,)
            record.exc_info = record.exc_text = None
        return True


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of every handler: ``json`` or ``console``."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _pid,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    final: list[Any] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        # The traceback as text before masking: a number inside an exception is masked too.
        structlog.processors.format_exc_info if fmt == "json" else _keep,
        mask_personal,
        renderer,
    ]
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)


def _keep(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # The console renderer formats the exception itself; mask its text first.
    exc = event.pop("exc_info", None)
    if exc:
        event["exception"] = structlog.processors.format_exc_info(_, __, {"exc_info": exc}).get(
            "exception", ""
        )
    return event


def configure(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> str:
    """Sends every log record of the process through one handler on ``stream`` (stderr).
    ``auto``: key=value lines on a terminal, JSON lines otherwise. The format chosen."""
    out = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequests) for f in server.filters):
        server.addFilter(BadRequests())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return fmt

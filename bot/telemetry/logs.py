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
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from bot.privacy import mask_text

# Our own and aiohttp's records say everything at INFO; these libraries are chatty below
# WARNING and say nothing an operator acts on.
_QUIET = ("jieba", "transitions", "asyncio", "aiohttp.server")


def mask_personal(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Masks phone, ID and card numbers in every string value of the line."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_text(value)
    return event


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of every handler: ``json`` or ``console``."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
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


def configure(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Sends every log record of the process through one handler on ``stream`` (stderr).
    ``auto``: key=value lines on a terminal, JSON lines otherwise."""
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
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))

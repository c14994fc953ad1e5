"""What a Redis reply or failure means to the store, for every client of bot/storage/resp*.py:
redis-py's exception class for an error reply, and "unavailable" (StoreUnavailable: 503,
retry later) logged once per outage."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.storage.base import StoreUnavailable
from bot.telemetry import metrics

log = logging.getLogger(__name__)

# "Redis cannot be used right now" (retry later), not "we have a bug": refused or lost
# connections, authentication, a server still loading its data (BusyLoadingError is a
# ConnectionError), timeouts, a replica after a fail-over, Redis at maxmemory.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OutOfMemoryError)

# Error replies whose first word says more than "ERR": the same classes redis-py raises.
_ERRORS: dict[str, type[Exception]] = {
    "NOSCRIPT": NoScriptError,
    "READONLY": ReadOnlyError,
    "OOM": OutOfMemoryError,
    "LOADING": BusyLoadingError,
    "NOAUTH": AuthenticationError,
    "WRONGPASS": AuthenticationError,
}


def reply_error(reply: hiredis.ReplyError) -> Exception:
    message = str(reply)
    return _ERRORS.get(message.split(" ", 1)[0], ResponseError)(message)


class Outage:
    """Turns "Redis cannot be used right now" into StoreUnavailable, with one WARNING per
    outage whatever the traffic meanwhile (shared by the single-server and cluster clients)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._down = False

    def unavailable(self, exc: Exception, commands: Sequence[Sequence[Any]]) -> StoreUnavailable:
        metrics.REDIS_ERRORS.labels("unavailable").inc()
        if not self._down:
            self._down = True
            log.warning("Redis at %s is unavailable: %s: %s", self.where, type(exc).__name__, exc)
        return StoreUnavailable(
            f"Redis at {self.where} is unavailable ({commands[0][0] if commands else '-'}): "
            f"{type(exc).__name__}: {exc}"
        )

    def served(self) -> None:
        if self._down:
            self._down = False
            log.warning("Redis at %s is available again", self.where)


def raise_first_error(replies: list[Any]) -> None:
    """An error reply raises (redis-py's class for its first word); counted."""
    errors = [r for r in replies if isinstance(r, hiredis.ReplyError)]
    if errors:
        metrics.REDIS_ERRORS.labels("reply").inc(len(errors))
        raise reply_error(errors[0])

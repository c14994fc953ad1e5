"""The desk's live feed: case opened/raised, claimed, released, reassigned, noted, expired,
resolved, new inbound replies on accounts a person owns, and changes of the unmatched list.
The console's web layer turns it into server-sent events; each subscriber gets every event
published after it subscribed.

- memory: an in-process fan-out (one bounded asyncio queue per subscriber);
- Redis: a capped stream (``keys.DESK_EVENTS``, XADD MAXLEN ~), read with XREAD BLOCK on a
  connection of the subscriber's own. The store's connection (``bot.storage.resp``) is
  multiplexed and speaks no pub/sub, and a blocking read on it would stall every command
  behind it. A stream also lets a subscriber that reconnects go on from the last id it saw.

A feed is a convenience for screens, never the record: losing an event (a full subscriber
queue, Redis down) only means a screen refreshes later; the cases are in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bot.storage import keys
from bot.storage.base import StoreUnavailable
from bot.storage.resp import Connection

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 1000  # events a slow subscriber may fall behind before it loses the oldest
STREAM_MAX = 10_000  # events the Redis stream keeps (approximately)
BLOCK_MS = 1000  # one XREAD waits at most this long (below the connection's timeout)


class DeskEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # case_opened (a handoff: opened, or raised when one was open) | case_claimed |
    # case_released | case_reassigned | case_note | case_expired | case_resolved | inbound
    # (a reply on an account a person owns) | unmatched (the unmatched list changed)
    kind: str
    account_id: str
    at: AwareDatetime
    case_id: str | None = None
    by: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class DeskEvents(ABC):
    async def publish(self, event: DeskEvent) -> None:
        """Publishes; never raises for the feed's own failures (logged: the store holds the
        truth, a screen only refreshes later)."""
        try:
            await self._publish(event)
        except StoreUnavailable as exc:
            log.warning("desk feed: %s event not published: %s", event.kind, exc)

    @abstractmethod
    async def _publish(self, event: DeskEvent) -> None: ...

    @abstractmethod
    def subscribe(self) -> AsyncIterator[DeskEvent]:
        """Every event published from now on, until the caller stops iterating."""


class MemoryDeskEvents(DeskEvents):
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[DeskEvent]] = set()

    async def _publish(self, event: DeskEvent) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # a stalled screen loses its oldest event, not the service
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[DeskEvent]:
        queue: asyncio.Queue[DeskEvent] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)


class RedisDeskEvents(DeskEvents):
    def __init__(self, connection: Connection, listen: Callable[[], Connection]) -> None:
        self._pipe = connection
        self._listen = listen  # a new connection for one subscriber's blocking reads

    async def _publish(self, event: DeskEvent) -> None:
        await self._pipe.one(
            "XADD", keys.DESK_EVENTS, "MAXLEN", "~", STREAM_MAX, "*", "e", event.model_dump_json()
        )

    async def subscribe(self) -> AsyncIterator[DeskEvent]:
        connection = self._listen()
        try:
            # "$" only on the first read: later reads go on from the last id seen, so nothing
            # published between two reads is missed.
            last: bytes | str = "$"
            while True:
                try:
                    reply = await connection.one(
                        "XREAD", "BLOCK", BLOCK_MS, "STREAMS", keys.DESK_EVENTS, last
                    )
                except StoreUnavailable as exc:
                    log.warning("desk feed: %s; reading again in 1 s", exc)
                    await asyncio.sleep(1.0)
                    continue
                for _stream, entries in reply or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        data = dict(zip(fields[::2], fields[1::2], strict=True))
                        yield DeskEvent.model_validate_json(data[b"e"])
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

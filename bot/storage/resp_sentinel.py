"""Redis Sentinel on the store's own client: the primary a Sentinel names, found again after a
fail-over.

``redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/db][?TLS options]``
(``rediss+sentinel`` for TLS to Redis): the Sentinels, and the name they monitor the primary
by. The credentials and TLS options are Redis's; the Sentinels are asked without them.

The commands go to one :class:`~bot.storage.resp.RedisConnection` to the primary, so every
guarantee of the single-server client holds. When that primary is lost (connection lost,
timeout, ``READONLY`` from a primary demoted in a fail-over) the command is StoreUnavailable,
as on one server (503, providers retry), and the next command asks the Sentinels again.
Nothing is re-sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from bot.storage.base import StoreUnavailable
from bot.storage.resp import (
    Command,
    RedisConnection,
    _redacted,
    split_hosts,
)
from bot.storage.resp_errors import UNAVAILABLE, Outage

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


class SentinelConnection:
    """The :class:`bot.storage.resp.Connection` of a primary watched by Redis Sentinel."""

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float = 2.0,
        scripts: Sequence[bytes] = (),
    ) -> None:
        self.url = url
        self._sentinels, path, template = split_hosts(url, SENTINEL_SCHEMES, "Sentinel")
        if not 1 <= len(path) <= 2:
            raise ValueError(f"Sentinel URL needs /<service name>[/db]: {_redacted(url)!r}")
        self._service = path[0]
        self._primary_url = template.replace("{db}", path[1] if len(path) > 1 else "0")
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "scripts": tuple(scripts),
        }
        self._connect_timeout = socket_connect_timeout
        # A bad TLS option or database fails here, at start-up.
        RedisConnection(self._primary_url.replace("{addr}", self._sentinels[0]), **self._options)
        self.where = f"sentinel {self._service}@{','.join(self._sentinels)}"
        self._outage = Outage(self.where)
        self._addr: str | None = None
        self._primary: RedisConnection | None = None
        self._stale = True
        self._asking: asyncio.Task[RedisConnection] | None = None

    async def call(self, *commands: Command) -> list[Any]:
        primary = await self._current(commands)
        try:
            return await primary.call(*commands)
        except StoreUnavailable:
            self._stale = True  # perhaps a fail-over: ask the Sentinels before the next one
            raise

    async def one(self, *command: Any) -> Any:
        return (await self.call(command))[0]

    async def scan(
        self, pattern: str, *, type_: str | None = None, count: int = 1000
    ) -> AsyncIterator[list[bytes]]:
        primary = await self._current((("SCAN",),))
        async for batch in primary.scan(pattern, type_=type_, count=count):
            yield batch

    def listener(self, socket_timeout: float) -> SentinelConnection:
        return SentinelConnection(self.url, socket_timeout=socket_timeout)

    async def close(self) -> None:
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
        if self._primary is not None:
            await self._primary.close()

    async def _current(self, commands: Sequence[Command]) -> RedisConnection:
        if self._primary is not None and not self._stale:
            return self._primary
        if self._asking is None or self._asking.done():
            self._asking = asyncio.get_running_loop().create_task(self._ask())
        try:
            primary = await asyncio.shield(self._asking)
        except UNAVAILABLE as exc:
            raise self._outage.unavailable(exc, commands) from exc
        self._outage.served()
        return primary

    async def _ask(self) -> RedisConnection:
        """The primary the first Sentinel that answers names (its connection is kept when
        the name did not change: a lost connection is made again by itself)."""
        failures: list[str] = []
        for sentinel in self._sentinels:
            asked = RedisConnection(f"redis://{sentinel}", socket_timeout=self._connect_timeout)
            try:
                reply = await asked.one("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self._service)
            except StoreUnavailable as exc:
                failures.append(f"{sentinel}: {exc}")
                continue
            finally:
                await asked.close()
            if not reply:
                failures.append(f"{sentinel}: does not know {self._service!r}")
                continue
            addr = f"{reply[0].decode()}:{int(reply[1])}"
            if addr != self._addr or self._primary is None:
                if self._primary is not None:
                    await self._primary.close()
                self._primary = RedisConnection(
                    self._primary_url.replace("{addr}", addr), **self._options
                )
                self._addr = addr
            self._stale = False
            return self._primary
        raise RedisConnectionError(f"no Sentinel named the primary: {'; '.join(failures)}")

"""A held account lock kept alive while its holder works (see ``bot.pipeline``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from bot.storage.base import AccountLock, StoreUnavailable


class Heartbeat:
    """Refreshes a held lock every ``interval`` seconds until stopped. A timer, not a task:
    most drains end within milliseconds, before it ever fires, and a timer cancelled unfired
    costs next to nothing (a drain is on every message's path)."""

    def __init__(
        self,
        lock: AccountLock,
        interval: float,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._lock = lock
        self._interval = interval
        self._spawn = spawn
        self._stopped = False
        self._handle = asyncio.get_running_loop().call_later(interval, self._beat)

    def _beat(self) -> None:
        if not self._stopped:
            self._spawn(self._refresh())

    async def _refresh(self) -> None:
        try:
            held = await self._lock.refresh()
        except StoreUnavailable:
            held = True  # unknown: tried again at the next beat; the next commit will tell
        if held and not self._stopped:
            self._handle = asyncio.get_running_loop().call_later(self._interval, self._beat)

    def stop(self) -> None:
        self._stopped = True
        self._handle.cancel()

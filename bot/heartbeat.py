"""Held account locks kept alive while their holders work (see ``bot.pipeline``).

One timer for all of a process's drains, not one per drain: most drains end within
milliseconds, long before any beat, and a drain is on every message's path, so holding a lock
costs a dict entry (a timer armed and cancelled per drain cost about 1.5 % of the service's
CPU in bench/inbound.py's profile). Each beat refreshes the locks held for longer than one
interval, so a lock is refreshed at the latest two intervals after it was taken; the pipeline
sets the interval to a third of the lock's TTL.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

from bot.storage.base import AccountLock, StoreUnavailable


class Heartbeats:
    def __init__(self, interval: float, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self._interval = interval
        self._spawn = spawn
        self._held: dict[int, tuple[AccountLock, float]] = {}
        self._keys = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, lock: AccountLock) -> int:
        """Keeps ``lock`` alive from now until :meth:`release` with the key returned."""
        loop = asyncio.get_running_loop()
        key = next(self._keys)
        self._held[key] = (lock, loop.time())
        if self._timer is None:
            self._timer = loop.call_later(self._interval, self._beat)
        return key

    def release(self, key: int) -> None:
        self._held.pop(key, None)

    def stop(self) -> None:
        self._held.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        now = loop.time()
        for key, (lock, since) in list(self._held.items()):
            if now - since >= self._interval:
                self._spawn(self._refresh(key, lock))
        if self._held:
            self._timer = loop.call_later(self._interval, self._beat)

    async def _refresh(self, key: int, lock: AccountLock) -> None:
        try:
            held = await lock.refresh()
        except StoreUnavailable:
            return  # unknown: tried again at the next beat; the next commit will tell
        if not held:
            self._held.pop(key, None)  # lost (a stall longer than the TTL): nothing to keep

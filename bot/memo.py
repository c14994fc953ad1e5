"""Objects this process wrote to the store, remembered with the exact text it wrote.

The drain reads back, moments later, the event the webhook just queued and the conversation
the previous event just committed. Parsing that JSON again cost about 6 % of a message's CPU
in bench/inbound.py. When the stored text is byte for byte what this process wrote, the
object it wrote from is the answer; any other text (written by another process, or changed
since) misses and is parsed as usual, so the store stays the only truth. Callers key entries
by that text (queued events) or keep it in the value and compare (conversations, one entry
per account).

The objects kept are frozen pydantic models: sharing one between readers is safe.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most ``capacity`` entries; the oldest written goes first (writes are the hits)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._items: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: K, value: V) -> None:
        items = self._items
        items.pop(key, None)  # a rewrite counts as new
        if len(items) >= self._capacity:
            del items[next(iter(items))]  # dicts keep insertion order: the oldest
        items[key] = value

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        """For entries read once (a queued event is processed once)."""
        return self._items.pop(key, None)

"""Unique ids for events, messages and lock tokens, without a system call each.

``uuid4()`` reads the kernel's random pool for every id (a system call; about 2 % of a
message's CPU in bench/inbound.py, several ids per message). Here a process draws 64 random
bits once and numbers its ids after them: unique across processes (and across a fork: the
child draws its own), unguessable enough for lock tokens that only need to differ between
owners, and 32 hex characters like ``uuid4().hex``.
"""

from __future__ import annotations

import itertools
import os
import secrets


class _Ids:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.reset)


def new_id() -> str:
    """32 lower-case hex characters, never repeated in this process or another."""
    return _IDS.new()

"""Ids without a system call each (bot/ids.py): unique in a process, across processes, across
a fork."""

from __future__ import annotations

import os
import re

from bot.ids import new_id


def test_ids_are_32_hex_characters_and_never_repeat() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_its_own_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id and leave at once
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    mine = [new_id() for _ in range(3)]
    assert child not in mine
    assert child[:16] != mine[0][:16]  # another process, another prefix

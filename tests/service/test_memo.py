"""bot.memo: objects this process wrote, by the text it wrote."""

from __future__ import annotations

import pytest

from bot.memo import Memo


def test_the_oldest_write_goes_first() -> None:
    memo: Memo[str, int] = Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    memo.put("a", 3)  # rewritten: now the newest
    memo.put("c", 4)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (3, None, 4)
    assert len(memo) == 2


def test_pop_reads_once() -> None:
    memo: Memo[bytes, str] = Memo(10)
    memo.put(b"{}", "event")
    assert memo.pop(b"{}") == "event"
    assert memo.pop(b"{}") is None
    assert memo.get(b"other") is None


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Memo(0)

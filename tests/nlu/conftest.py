from __future__ import annotations

from datetime import datetime

import pytest

from intents import Understander, Understanding

NOW = datetime.fromisoformat("2026-12-02T10:00:00+08:00")  # a Wednesday


@pytest.fixture
def understand(nlu: Understander):  # type: ignore[no-untyped-def]
    def run(text: str, now: datetime = NOW) -> Understanding:
        return nlu.understand(text, now=now, tz="Asia/Shanghai")

    return run

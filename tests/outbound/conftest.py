"""Shared fixtures of the carrier tests: the fake carrier and one HTTP session.

Plain helpers (sample messages, a closed port, hypothesis strategies) live in
``fakecarrier.py``, imported by module name like ``tests/dialogs/dialogs_support.py``: this
directory has no ``__init__.py`` (as the other test directories), and ``conftest`` is not a
unique module name to import from."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from fakecarrier import FakeCarrier


@pytest.fixture
async def fake() -> AsyncIterator[FakeCarrier]:
    carrier = FakeCarrier(hang_s=5.0)
    await carrier.start()
    try:
        yield carrier
    finally:
        await carrier.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s

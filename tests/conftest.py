"""Shared test set-up: one NLU for the whole run, its model cache kept inside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests must not write to the user's home; the cache survives between runs to keep them fast.
os.environ.setdefault("SMSBOT_CACHE_DIR", str(ROOT / ".cache" / "smsbot"))

from intents import Understander  # noqa: E402  (after the cache location is set)


@pytest.fixture(scope="session")
def nlu() -> Understander:
    """Loaded once: building the NLU costs about a second."""
    return Understander.load()

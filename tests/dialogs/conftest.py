"""Shared fixtures for the dialog tests."""

from __future__ import annotations

import pytest
from dialogs_support import FIXTURES

from dialogs.engine import CompiledFlow, compile_flow
from dialogs.flow import load_flow
from dialogs.registry import DEFAULT_FLOWS


@pytest.fixture(scope="session")
def collections() -> CompiledFlow:
    return compile_flow(load_flow(DEFAULT_FLOWS / "collections.yaml"))


@pytest.fixture(scope="session")
def minimal() -> CompiledFlow:
    return compile_flow(load_flow(FIXTURES / "valid.yaml"))

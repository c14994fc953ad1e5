"""Shared test set-up: one NLU for the whole run, its model cache kept inside the checkout."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests must not write to the user's home; the cache survives between runs to keep them fast.
os.environ.setdefault("SMSBOT_CACHE_DIR", str(ROOT / ".cache" / "smsbot"))

from intents import Understander  # noqa: E402  (after the cache location is set)


@pytest.fixture(scope="session")
def nlu() -> Understander:
    """Loaded once: building the NLU costs about a second."""
    return Understander.load()


# --- every log line of the run, as the service writes it, scanned for personal numbers ------
# The service's own formatter (bot/telemetry/logs.py) writes every record of the run, at INFO
# and above (DEBUG where a test asks for it), to a file; at the end a mobile number left
# unmasked in any line fails the run, naming the line.
_UNMASKED = re.compile(r"(?<![\d*])(?:\+?86)?1[3-9]\d{9}(?![\d*])")
_LOG_SCAN: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    from bot.telemetry.logs import formatter

    fd, path = tempfile.mkstemp(prefix="smsbot-test-log-", suffix=".jsonl")
    os.close(fd)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    _LOG_SCAN.update(path=path, handler=handler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    handler = _LOG_SCAN.get("handler")
    if handler is None:
        return
    logging.getLogger().removeHandler(handler)
    handler.close()
    path = Path(_LOG_SCAN["path"])
    found = []
    with path.open(encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            if _UNMASKED.search(line):
                found.append(f"{n}: {line.strip()[:300]}")
    size = path.stat().st_size
    path.unlink()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if found:
        if reporter is not None:
            reporter.write_line(f"unmasked phone numbers in {len(found)} log line(s):", red=True)
            for f in found[:20]:
                reporter.write_line("  " + f)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None and size:
        reporter.write_line(f"log scan: {size // 1024} KiB of log lines, no unmasked phone number")

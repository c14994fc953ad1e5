"""The service as real processes (``smsbot serve``) on a test's Redis: start, wait, kill."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from tests.service.apphelpers import API_KEY, GENERIC_SECRET

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    redis_url: str,
    port: int,
    log: Path | None = None,
    args: Sequence[str] = (),
    **env: str,
) -> subprocess.Popen[bytes]:
    """``smsbot serve [args]`` on ``redis_url``; its output appended to ``log`` (else
    discarded)."""
    environ = {
        **os.environ,
        "SMSBOT_REDIS_URL": redis_url,
        "SMSBOT_PORT": str(port),
        "SMSBOT_API_KEY": API_KEY,
        "SMSBOT_GENERIC_SECRET": GENERIC_SECRET,
        **env,
    }
    if log is None:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", *args],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", *args],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with session.get(base + "/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("service did not become ready")

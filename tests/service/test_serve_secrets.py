"""Secrets stay out of what ``smsbot serve`` prints and logs: the generated API key is written
to a file only its user may read (the banner names the file), and the carriers' secret path
tokens are masked in the access log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.accesslog import MaskingAccessLogger
from bot.app import create_app
from bot.serve import write_api_key
from bot.telemetry import logs
from common.errors import UsageError
from intents import Understander
from intents.nlu import default_cache_dir
from tests.service.apphelpers import ALIYUN_TOKEN, settings
from tests.service.processes import ROOT, free_port, wait_ready

pytestmark = pytest.mark.timeout(120)
TENCENT_TOKEN = "tencent-secret-path-token"


def test_the_key_file_is_readable_by_its_user_only(tmp_path: Path) -> None:
    old = tmp_path / "cache" / "api-key"
    old.parent.mkdir()
    old.write_text("old\n")
    old.chmod(0o644)  # left by something else: the key must not inherit its permissions
    path = write_api_key("k3y", tmp_path / "cache")
    assert path == old
    assert path.read_text() == "k3y\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fresh = write_api_key("k3y", tmp_path / "new" / "dir")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700


def test_an_unwritable_key_file_stops_the_start_saying_what_to_set(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the directory should be
    with pytest.raises(UsageError, match="set SMSBOT_API_KEY"):
        write_api_key("k3y", blocked / "cache")


async def test_the_access_log_masks_path_tokens(
    nlu: Understander, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings(tencent_path_token=TENCENT_TOKEN, tencent_allowed_ips=[]), nlu=nlu)
    server = TestServer(app)
    # As ``smsbot serve`` runs it (TestServer takes runner options here, not in __init__).
    await server.start_server(
        access_log=logging.getLogger("aiohttp.access"), access_log_class=MaskingAccessLogger
    )
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        async with TestClient(server) as c:
            assert (await c.get(f"/webhooks/aliyun/{ALIYUN_TOKEN}")).status == 200
            assert (await c.post(f"/webhooks/aliyun/{ALIYUN_TOKEN}?x=1", json=[])).status == 200
            await c.post(f"/webhooks/aliyun/report/{ALIYUN_TOKEN}", json=[])
            await c.post(f"/webhooks/tencent/{TENCENT_TOKEN}", json=[])
            await c.post(f"/webhooks/tencent/status/{TENCENT_TOKEN}", json=[])
            await c.post("/webhooks/aliyun/wrong-guess", json=[])  # refused: masked all the same
            await c.get("/healthz")
            await asyncio.sleep(0.05)  # the log line follows the response
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    text = "\n".join(lines)
    assert ALIYUN_TOKEN not in text and TENCENT_TOKEN not in text and "wrong-guess" not in text
    for path in (
        "GET /webhooks/aliyun/*** ",
        "POST /webhooks/aliyun/***?x=1 ",
        "POST /webhooks/aliyun/report/*** ",
        "POST /webhooks/tencent/*** ",
        "POST /webhooks/tencent/status/*** ",
        "GET /healthz ",
    ):
        assert path in text, text


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_real_start_prints_neither_the_key_nor_a_token(tmp_path: Path) -> None:
    # The model cache, seen through links: a start without it would train for 20 s.
    cache = tmp_path / "cache"
    cache.mkdir()
    for model in default_cache_dir().glob("intent-model-*.npz"):
        (cache / model.name).symlink_to(model)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in {"SMSBOT_API_KEY", "SMSBOT_REDIS_URL"}}
    env |= {
        "SMSBOT_PORT": str(port),
        "SMSBOT_CACHE_DIR": str(cache),
        "SMSBOT_ACCESS_LOG": "1",
        "SMSBOT_ALIYUN_PATH_TOKEN": ALIYUN_TOKEN,
    }
    log = tmp_path / "serve.log"
    proc = _start(env, log)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)
            key = (cache / "api-key").read_text().strip()
            auth = {"Authorization": f"Bearer {key}"}
            async with session.get(base + "/api/unmatched", headers=auth) as r:
                assert r.status == 200
            async with session.post(f"{base}/webhooks/aliyun/{ALIYUN_TOKEN}", json=[]) as r:
                assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    out = log.read_text(errors="replace")
    assert f"in {cache / 'api-key'}" in out
    assert f"SMSBOT_API_KEY is not set: this run's API key was made now and is in {cache}" in out
    assert "stopping: no new requests, finishing the work in flight" in out  # the SIGTERM
    assert f"smsbot (pid {proc.pid}) stopped" in out
    assert key not in out
    assert ALIYUN_TOKEN not in out
    assert "/webhooks/aliyun/***" in out


async def test_a_malformed_request_is_one_warning_not_an_error_with_a_traceback(
    nlu: Understander,
) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure("json", "INFO", stream=out)  # as smsbot serve configures it
    try:
        server = TestServer(create_app(settings(), nlu=nlu))
        await server.start_server(
            access_log=logging.getLogger("aiohttp.access"), access_log_class=MaskingAccessLogger
        )
        try:
            bad = [
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + b"a" * 10_000 + b"\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: 13812345678\x01\r\n\r\n",
            ]
            for raw in bad:
                reader, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(raw)
                await writer.drain()
                status = await reader.readline()
                assert b" 400 " in status, status
                writer.close()
            await asyncio.sleep(0.1)
        finally:
            await server.close()
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert not [r for r in records if r["level"] in ("error", "critical")], records
    bad_lines = [r for r in records if r["event"].startswith("bad HTTP request")]
    assert len(bad_lines) == len(bad) and all(r["level"] == "warning" for r in bad_lines)
    assert "13812345678" not in out.getvalue() and "Traceback" not in out.getvalue()

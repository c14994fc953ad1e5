"""Operators' reload (issue 16): flows, templates and rule packs read again while the service
runs — on ``POST /api/admin/reload`` and on SIGHUP; a bad edit changes nothing that runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.context import FLOWS, GATE, PIPELINE, SENDER, STORE
from intents import Understander
from tests.service.apphelpers import API_KEY, AUTH, account, client, daytime_clock
from tests.service.processes import ROOT, free_port, wait_ready

pytestmark = pytest.mark.timeout(90)

FLOW = "flows/collections.yaml"
TEMPLATES = "templates/collections.yaml"
CONFIG = "config/compliance.yaml"


@pytest.fixture
def operator_dir(tmp_path: Path) -> Path:
    """The operator's own copy of the flows, templates and compliance configuration."""
    shutil.copytree(ROOT / "dialogs" / "flows", tmp_path / "flows")
    shutil.copytree(ROOT / "dialogs" / "templates", tmp_path / "templates")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _settings(d: Path) -> dict[str, Any]:
    return {"flows_dir": d / "flows", "compliance_file": d / CONFIG}


async def _reload(c: Any, auth: bool = True) -> tuple[int, dict[str, Any]]:
    r = await c.post("/api/admin/reload", headers=AUTH if auth else {})
    return r.status, await r.json()


async def _sent_texts(c: Any) -> list[str]:
    return [m.text for m in await c.app[STORE].list_sandbox()]


async def test_reload_needs_the_api_key(nlu: Understander, operator_dir: Path) -> None:
    async with client(nlu, **_settings(operator_dir)) as c:
        status, body = await _reload(c, auth=False)
        assert status == 401 and "API key" in body["error"]


async def test_a_template_edit_is_taken_without_a_restart(
    nlu: Understander, operator_dir: Path
) -> None:
    async with client(nlu, clock=daytime_clock(), **_settings(operator_dir)) as c:
        before = c.app[FLOWS].get("collections").version
        _edit(
            operator_dir / TEMPLATES,
            "请通过{creditor}官方App还款。",
            "请通过{creditor}官方App或网银还款。",
        )
        status, report = await _reload(c)
        assert status == 200 and report["ok"] and report["rules"] == "reloaded"
        assert report["flows"]["collections"] != before
        body = {"accounts": [account(1)], "start": True}
        assert (await c.post("/api/accounts", json=body, headers=AUTH)).status == 200
        await _idle(c)
        assert any("官方App或网银还款" in t for t in await _sent_texts(c))


async def test_a_broken_flow_is_refused_with_file_and_line_and_the_old_one_runs(
    nlu: Understander, operator_dir: Path
) -> None:
    async with client(nlu, clock=daytime_clock(), **_settings(operator_dir)) as c:
        before = c.app[FLOWS].get("collections").version
        _edit(operator_dir / FLOW, "        to: awaiting_reply\n        do:\n          - send: first_reminder",
              "        to: awaiting_replyy\n        do:\n          - send: first_reminder")  # fmt: skip
        status, report = await _reload(c)
        assert status == 422 and not report["ok"]
        assert any("collections.yaml:" in p and "awaiting_replyy" in p for p in report["problems"])
        assert report["flows"]["collections"] == before  # the last good version runs on
        body = {"accounts": [account(2)], "start": True}
        assert (await c.post("/api/accounts", json=body, headers=AUTH)).status == 200
        await _idle(c)
        conv = await (await c.get("/api/conversations/acc-0002", headers=AUTH)).json()
        assert conv["state"] == "awaiting_reply"


async def test_a_broken_rule_pack_is_refused_and_the_running_rules_kept(
    nlu: Understander, operator_dir: Path
) -> None:
    async with client(nlu, clock=daytime_clock(), **_settings(operator_dir)) as c:
        _edit(operator_dir / CONFIG, "proactive_max_per_day: 1", "proactive_max_per_day: many")
        status, report = await _reload(c)
        assert status == 422 and report["rules"] == "kept"
        assert any(
            "compliance.yaml:" in p and "proactive_max_per_day" in p for p in report["problems"]
        )
        # A good edit then takes: two proactive messages a day.
        _edit(operator_dir / CONFIG, "proactive_max_per_day: many", "proactive_max_per_day: 2")
        status, report = await _reload(c)
        assert status == 200 and report["rules"] == "reloaded"
        assert c.app[GATE].pack("cn").frequency.proactive_max_per_day == 2


async def _idle(c: Any) -> None:
    await asyncio.sleep(0.05)
    await c.app[PIPELINE].idle()
    await c.app[SENDER].idle()


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


def test_sighup_reloads_and_keeps_the_memory_store(operator_dir: Path, tmp_path: Path) -> None:
    """Before, SIGHUP killed the server, and with the memory store every account was lost."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSBOT_")}
    env.update(
        SMSBOT_PORT=str(port),
        SMSBOT_API_KEY=API_KEY,
        SMSBOT_FLOWS_DIR=str(operator_dir / "flows"),
        SMSBOT_COMPLIANCE_FILE=str(operator_dir / CONFIG),
        SMSBOT_CONFIG=str(tmp_path / "none.yaml"),
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        asyncio.run(_sighup_journey(proc, f"http://127.0.0.1:{port}", operator_dir, log))
    finally:
        proc.terminate()
        proc.wait(timeout=15)


async def _sighup_journey(
    proc: subprocess.Popen[bytes], base: str, operator_dir: Path, log: Path
) -> None:
    async with aiohttp.ClientSession(headers=AUTH) as s:
        await wait_ready(s, base)
        assert proc.poll() is None, _text(log)
        async with s.post(
            base + "/api/accounts", json={"accounts": [account(1)], "start": False}
        ) as r:
            assert r.status == 200
        _edit(operator_dir / TEMPLATES, "如有疑问或困难", "如有任何疑问或困难")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "configuration reloaded" not in _text(log):
            assert proc.poll() is None, "SIGHUP stopped the service"
            assert time.monotonic() < deadline, _text(log)
            await asyncio.sleep(0.1)
        assert proc.poll() is None
        async with s.get(base + "/api/conversations/acc-0001") as r:
            assert r.status == 200  # the memory store's accounts survived

"""``smsbot compliance``: exit codes and output operators rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main

OK = "【XX金融】张*您好，您尾号1234的借款待还3200.00元，请通过XX消费金融官方App还款。如有疑问请致电95XXX。"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_lawful_text_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compliance", "check", OK)
    assert code == 0, out
    assert "may be sent" in out


@pytest.mark.parametrize(
    "text",
    [
        OK + "不还就马上逮捕你",  # invented legal consequence
        OK + "我们会通知你所有联系人",  # exposure to contacts
        OK + "请转到个人账户",  # private account
        "【假冒金融】您的借款待还3200元。",  # signature not whitelisted
    ],
)
def test_a_prohibited_text_exits_1_and_names_the_rule(
    capsys: pytest.CaptureFixture[str], text: str
) -> None:
    code, out, _ = run(capsys, "compliance", "check", text)
    assert code == 1, out
    assert "verdict: blocked; rules: CN-" in out


def test_templates_and_packs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compliance", "check", "--template", "first_reminder")
    assert code == 0, out
    code, out, _ = run(capsys, "compliance", "check", "--pack", "us", OK)
    assert code == 1  # no opt-out line, no "debt collector": not a lawful US text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compliance", "check"], "give either TEXT or --template"),
        (["compliance", "check", "--pack", "xx", "hi"], "unknown pack 'xx'"),
        (["compliance", "check", "--template", "nope"], "no template 'nope'"),
        (["compliance", "report", "--from", "yesterday", "--to", "2026-12-03"], "--from"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


async def test_explain_report_and_export_read_the_service_store(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    redis_url: str,
) -> None:
    import asyncio

    from bot.clock import Clock
    from intents import Understander
    from tests.service.apphelpers import AUTH, account, client, post_twilio

    nlu = Understander.load()
    async with client(nlu, redis_url=redis_url, clock=Clock()) as c:
        await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        await post_twilio(c, account(1)["phone"], "我要投诉你们暴力催收", "SM" + "d" * 32)
        from bot.context import PIPELINE

        await c.app[PIPELINE].idle()
        await asyncio.sleep(0.1)
    monkeypatch.setenv("SMSBOT_REDIS_URL", redis_url)
    code, out, _ = await asyncio.to_thread(run, capsys, "compliance", "explain", "acc-0001")
    assert code == 0
    report = json.loads(out)
    assert report["pack"] == "cn" and "next_allowed_send" in report and "caps" in report
    blocks = tmp_path / "blocks.csv"
    code, out, _ = await asyncio.to_thread(
        run,
        capsys,
        "compliance",
        "report",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--csv",
        str(blocks),
    )
    assert code == 0 and "gate decisions" in out and blocks.exists()
    evidence = tmp_path / "acc.jsonl"
    code, _, _ = await asyncio.to_thread(
        run, capsys, "compliance", "export", "acc-0001", "-o", str(evidence)
    )
    rows = [json.loads(line) for line in evidence.read_text(encoding="utf-8").splitlines()]
    kinds = {r["kind"] for r in rows}
    assert {"inbound", "send", "gate"} <= kinds, kinds
    csv_path = tmp_path / "acc.csv"
    code, _, _ = await asyncio.to_thread(
        run, capsys, "compliance", "export", "acc-0001", "--format", "csv", "-o", str(csv_path)
    )
    assert csv_path.read_text(encoding="utf-8").startswith("at,kind,template")

"""``smsbot campaign`` on the configured Redis store, as an operator runs it, with a lender's
file as Chinese Excel writes it (GBK, Chinese headers, a bad row in the middle)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from bot.cli import main

if TYPE_CHECKING:
    from conftest import RedisServer


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.flushdb()
    monkeypatch.setenv("SMSBOT_REDIS_URL", redis_server.url)
    return redis_server.url


def test_without_redis_the_commands_refuse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SMSBOT_REDIS_URL", raising=False)
    assert main(["campaign", "list"]) == 2
    assert "SMSBOT_REDIS_URL is not set" in capsys.readouterr().err


def test_import_status_pause_resume_cancel_export_list(
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "accounts.csv"
    lines = ["账户号,姓名,手机,应还金额,逾期天数,到期日"]
    for i in (1, 2, 0, 3):  # the third data row (the file's row 4) has a landline
        phone = f"1380000{i:04d}" if i else "010-62345678"
        lines.append(f"acc-{i or 9:04d},张三,{phone},3200.00,5,2026/11/24")
    source.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    errors = tmp_path / "errors.txt"
    argv = ["campaign", "import", str(source), "--name", "十二月", "--rate", "5"]
    assert main([*argv, "--map", "手机=phone", "--errors", str(errors)]) == 0
    out = capsys.readouterr().out
    assert "3 imported (3 new, 0 updated), 1 rejected" in out
    # The file's 逾期天数 (5) is not the days since its 到期日 (2026-11-24): said, not refused.
    assert "3 row(s) have days_overdue that disagree with due_date" in out
    assert "row 2: days_overdue 5 but due_date 2026-11-24 was " in out
    assert "row 4: phone: " in out and "landline" in out
    written = errors.read_text(encoding="utf-8-sig").strip()
    assert written.startswith("row 4: phone: ") and "62345678" not in written  # masked
    assert main(argv) == 0  # again: nobody new
    assert "3 imported (0 new, 0 updated)" in capsys.readouterr().out

    assert main(["campaign", "status", "十二月"]) == 0
    out = capsys.readouterr().out
    assert "scheduled" in out and "imported           3" in out and "pending            3" in out
    assert main(["campaign", "pause", "十二月"]) == 0
    assert "十二月: paused (3 pending)" in capsys.readouterr().out
    assert main(["campaign", "resume", "十二月"]) == 0
    assert "running" in capsys.readouterr().out
    assert main(["campaign", "list"]) == 0
    listed = capsys.readouterr().out
    campaign_id = listed.split()[0]
    assert "十二月" in listed
    report = tmp_path / "report.csv"
    assert main(["campaign", "export", campaign_id, "-o", str(report)]) == 0
    assert len(report.read_text(encoding="utf-8-sig").splitlines()) == 4
    assert main(["campaign", "cancel", campaign_id]) == 0
    assert "cancelled (0 pending)" in capsys.readouterr().out
    assert main(["campaign", "resume", campaign_id]) == 1
    assert "cannot resume" in capsys.readouterr().err
    assert main(["campaign", "status", "nope"]) == 1
    assert "no campaign" in capsys.readouterr().err
    # A start time without an offset is Beijing time, and the status shows it so.
    later = ["campaign", "import", str(source), "--name", "一月", "--start-at", "2030-01-02T09:00"]
    assert main([*later, "--map", "手机=phone"]) == 0
    capsys.readouterr()
    assert main(["campaign", "status", "一月"]) == 0
    assert "/s from 2030-01-02 09:00:00+0800" in capsys.readouterr().out


def test_status_into_a_pipe_that_closes_early_is_not_an_error(redis_url: str) -> None:
    """`smsbot campaign list | head -1`: no traceback when the reader stops reading."""
    env = {**os.environ, "SMSBOT_REDIS_URL": redis_url}
    script = "import sys\nfrom bot.cli import main\nsys.exit(main(['campaign', 'list']))\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader goes away before anything is written
    _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err and proc.returncode == 0, err

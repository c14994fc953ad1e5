"""``smsbot campaign`` on the configured Redis store, as an operator runs it. The file reader
(bot.campaigns.rows) is another change's: a stand-in with its interface is installed here."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

from bot.cli import main
from bot.records import AccountRecord
from tests.service.apphelpers import account
from tests.service.campaignhelpers import RowError

if TYPE_CHECKING:
    from conftest import RedisServer


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.flushdb()
    monkeypatch.setenv("SMSBOT_REDIS_URL", redis_server.url)
    return redis_server.url


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """bot.campaigns.rows as its interface says: each line of the file is an account id's
    number, or "bad" for a refused row. Records the calls."""
    calls: list[dict[str, Any]] = []
    module = types.ModuleType("bot.campaigns.rows")

    def read_accounts(source: Any, **kw: Any) -> Iterator[tuple[int, Any]]:
        calls.append(kw)
        for n, line in enumerate(source.read().decode().split(), start=2):
            if line == "bad":
                yield n, RowError(n, "phone", "not a mainland mobile number")
            else:
                yield n, AccountRecord.model_validate(account(int(line)))

    def write_errors(errors: Iterable[RowError], path: Path) -> int:
        lines = [str(e) for e in errors]
        path.write_text("\n".join(lines), encoding="utf-8")
        return len(lines)

    module.read_accounts = read_accounts  # type: ignore[attr-defined]
    module.write_errors = write_errors  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot.campaigns.rows", module)
    import bot.campaigns

    monkeypatch.setattr(bot.campaigns, "rows", module, raising=False)
    return calls


def test_without_redis_the_commands_refuse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SMSBOT_REDIS_URL", raising=False)
    assert main(["campaign", "list"]) == 2
    assert "SMSBOT_REDIS_URL is not set" in capsys.readouterr().err


def test_import_status_pause_resume_cancel_export_list(
    redis_url: str,
    reader: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "accounts.csv"
    source.write_text("1\n2\nbad\n3\n")
    errors = tmp_path / "errors.txt"
    argv = ["campaign", "import", str(source), "--name", "十二月", "--rate", "5"]
    assert main([*argv, "--map", "手机=phone", "--errors", str(errors)]) == 0
    out = capsys.readouterr().out
    assert "3 imported (3 new), 1 rejected" in out
    assert "row 4: phone: not a mainland mobile number" in out
    assert errors.read_text(encoding="utf-8") == "row 4: phone: not a mainland mobile number"
    assert reader[0]["mapping"] == {"手机": "phone"} and reader[0]["filename"] == "accounts.csv"
    assert main(argv) == 0  # again: nobody new
    assert "3 imported (0 new)" in capsys.readouterr().out

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

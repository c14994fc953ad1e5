"""`smsbot flows …` and `smsbot simulate` through the real entry point."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dialogs_support import FIXTURES

from bot.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_default_flows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "flows", "validate")
    assert code == 0
    assert "ok " in out
    assert "flow collections version" in out


def test_validate_reports_problems_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    broken = FIXTURES / "broken" / "unknown_state.yaml"
    code, out, _ = run(capsys, "flows", "validate", str(FIXTURES / "valid.yaml"), str(broken))
    assert code == 1
    assert "unknown_state.yaml:18: states.new.rules[0].to: target state 'wiating'" in out
    assert "(hint: did you mean 'waiting'?)" in out
    assert "FAIL" in out
    assert "ok " in out


def test_validate_against_the_running_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = tmp_path / "new.yaml"
    new.write_text((FIXTURES / "valid.yaml").read_text().replace("waiting", "pending"))
    code, out, _ = run(
        capsys, "flows", "validate", str(new), "--previous", str(FIXTURES / "valid.yaml")
    )
    assert code == 1
    assert "state 'waiting' of the running version" in out


def test_validate_missing_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "flows", "validate", "no/such/flow.yaml")
    assert code == 2
    assert "no such file" in err


def test_flows_test_runs_the_operators_tests(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "flows", "test")
    assert code == 0, out
    assert " passed, 0 failed" in out


def test_flows_test_fails_with_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "flow: collections\naccount: {due_date: 2026-11-25}\nstart: '2026-12-02T10:00:00+08:00'\n"
        "tests:\n  - name: wrong\n    steps:\n      - start: true\n        expect: {state: paid}\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "flows", "test", str(path))
    assert code == 1
    assert "- state: paid\n    + state: awaiting_reply" in out


def test_graph_writes_svg(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "flow.svg"
    code, _, _ = run(capsys, "flows", "graph", "collections", "-o", str(out_file))
    assert code == 0
    assert "<svg" in out_file.read_text(encoding="utf-8")


def test_graph_of_a_file_and_a_bad_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, _ = run(
        capsys, "flows", "graph", str(FIXTURES / "valid.yaml"), "-o", str(tmp_path / "g.dot")
    )
    assert code == 0
    code, _, err = run(capsys, "flows", "graph", "collections", "-o", str(tmp_path / "g.pdf"))
    assert code == 2
    assert ".svg, .png or .dot" in err


def test_graph_of_an_invalid_flow_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = FIXTURES / "broken" / "no_timeout.yaml"
    code, _, err = run(capsys, "flows", "graph", str(broken), "-o", str(tmp_path / "g.dot"))
    assert code == 1
    assert "has no timeout" in err


def test_simulate_reads_the_borrower_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("/intent acknowledge\n/wait 2d\n/quit\n"))
    code, out, _ = run(capsys, "simulate", "--flow", "collections")
    assert code == 0
    assert "bot [first_reminder" in out
    assert "bot [gentle_reminder" in out


def test_simulate_bad_start_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "simulate", "--start", "yesterday")
    assert code == 2
    assert "--start" in err


@pytest.fixture
def operator_flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An operator's own flows directory, named by SMSBOT_FLOWS_DIR, with an edited template."""
    import shutil

    root = Path(__file__).resolve().parents[2]
    shutil.copytree(root / "dialogs" / "flows", tmp_path / "flows")
    shutil.copytree(root / "dialogs" / "templates", tmp_path / "templates")
    path = tmp_path / "templates" / "collections.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("感谢告知，", "感谢您的告知，"), encoding="utf-8"
    )
    monkeypatch.setenv("SMSBOT_FLOWS_DIR", str(tmp_path / "flows"))
    monkeypatch.setenv("SMSBOT_CONFIG", str(tmp_path / "none.yaml"))
    return tmp_path / "flows"


def test_commands_read_the_operators_flows_not_the_repositorys(
    capsys: pytest.CaptureFixture[str], operator_flows: Path
) -> None:
    """Issue 16: `flows test`, `flows validate` and `compliance check --template` follow
    SMSBOT_FLOWS_DIR (or --flows), and `flows test` says which directory it read."""
    code, out, _ = run(capsys, "compliance", "check", "--template", "paid_claim_ack")
    assert code == 0 and "感谢您的告知" in out
    code, out, _ = run(capsys, "flows", "validate")
    assert code == 0 and str(operator_flows) in out
    tests = Path(__file__).resolve().parents[2] / "dialogs" / "tests" / "promise.yaml"
    code, out, err = run(capsys, "flows", "test", str(tests))
    assert code == 0 and f"flows from {operator_flows}" in err
    code, _, err = run(capsys, "flows", "test", "--flows", str(operator_flows / "nope"), str(tests))
    assert code == 2 and "no such directory" in err

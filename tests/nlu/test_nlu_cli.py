"""The CLI contract other tools rely on."""

from __future__ import annotations

import io
import json

import pytest

from bot.cli import main


def _lines(out: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.splitlines()]


def test_classify_texts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--now", "2026-12-02T10:00:00+08:00", "明天还500", "TD"]) == 0
    first, second = _lines(capsys.readouterr().out)
    assert first["text"] == "明天还500"
    assert first["intent"] == "promise_to_pay"
    assert first["intents"][0] == {"name": "promise_to_pay", "score": first["intents"][0]["score"]}
    assert first["entities"]["date"] == "2026-12-03"
    assert first["entities"]["amount"] == 500
    assert first["entities"]["date_range"] is None and first["entities"]["installments"] is None
    assert "rules" in first["explain"] and "model" in first["explain"]
    assert second["intent"] == "stop"


def test_classify_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("好的\n这几天就还\n\n"))
    assert main(["classify", "--now", "2026-12-02T10:00:00", "--tz", "Asia/Shanghai"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert [r["intent"] for r in rows] == ["acknowledge", "promise_to_pay", "unknown"]
    assert rows[1]["entities"]["date_range"] == ["2026-12-02", "2026-12-05"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify", "--now", "yesterday", "x"], "--now: not an ISO-8601 time"),
        (["classify", "--tz", "Mars/Olympus", "x"], "unknown time zone 'Mars/Olympus'"),
        (["intents", "eval", "/no/such/file.yaml"], "no such file"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["intents", "nonsense"])
    assert exc.value.code == 2


def test_eval_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intents", "eval"]) == 0
    out = capsys.readouterr().out
    for heading in ("primary accuracy", "macro-F1", "date exact", "amount exact", "confusion"):
        assert heading in out
    assert main(["intents", "eval", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] >= 260 and set(report["intents"]) >= {"stop", "unknown"}


def test_check_passes_on_project_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intents", "check"]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_classify_reports_a_bad_line_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = "好的\n".encode() + b"\xff\xfe\xe5\n" + "明天还\n".encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
    assert main(["classify", "--now", "2026-12-02T10:00:00+08:00"]) == 1
    captured = capsys.readouterr()
    rows = _lines(captured.out)
    assert [r.get("intent") for r in rows] == ["acknowledge", None, "promise_to_pay"]
    assert rows[1] == {"input": "line 2", "error": "not UTF-8 (byte 0xff at offset 0); skipped"}
    assert "line 2: not UTF-8" in captured.err


def test_classify_reads_undecodable_arguments_as_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # How argv holds the byte 0xff on a UTF-8 system (surrogateescape).
    assert main(["classify", "--now", "2026-12-02T10:00:00+08:00", "\udcff", "TD"]) == 1
    rows = _lines(capsys.readouterr().out)
    assert rows[0]["input"] == "argument 1" and rows[1]["intent"] == "stop"

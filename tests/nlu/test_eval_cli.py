"""`smsbot intents eval`: the baseline beside our figures, cross-validation, rule figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.cli import main
from intents import Understander
from intents.data import DATA_DIR
from intents.rules import load_rules


def test_baseline_is_printed_beside_with_a_paired_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["intents", "eval", "--baseline", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("primary_accuracy", "macro_f1"):
        row = report["baseline"][name]
        assert row["smsbot"] == report[name]
        assert row["difference"] == pytest.approx(row["smsbot"] - row["baseline"], abs=2e-4)
        lo, hi = row["interval95"]
        assert lo <= row["difference"] <= hi
        assert 0.3 < row["baseline"] < 1.0  # a trained model, not a constant


def test_cross_validation_reports_the_decisions_the_model_carries(
    capsys: pytest.CaptureFixture[str], nlu: Understander
) -> None:
    assert main(["intents", "eval", "--cv"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"5-fold cross-validation on \d{4,} training examples", out)
    model = nlu._model
    for intent, threshold in model.thresholds.items():
        row = re.search(rf"^{intent.value}\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+(yes|no)", out, re.M)
        assert row is not None, intent
        assert float(row.group(1)) == pytest.approx(threshold, abs=1e-3)
        assert (row.group(2) == "yes") == (intent in model.rules_help)


def test_rule_figures_cover_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intents", "eval", "--rules"]) == 0
    out = capsys.readouterr().out
    for spec in load_rules(DATA_DIR / "rules.yaml").specs:
        assert re.search(rf"^{re.escape(spec.id)}\s", out, re.M), spec.id
    assert re.search(r"^\d+ of \d+ rules never fire, fire mostly wrong or hurt$", out, re.M)


def test_training_reports_take_no_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intents", "eval", "--cv", str(DATA_DIR / "heldout.yaml")]) == 2
    assert "give no FILE" in capsys.readouterr().err


def test_styles_get_their_own_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "styled.yaml"
    f.write_text(
        'now: "2026-12-02T10:00:00+08:00"\ntz: Asia/Shanghai\nexamples:\n'
        "  - text: 明天还五百\n    intents: [promise_to_pay]\n    date: 2026-12-03\n"
        "    amount: 500\n    style: standard\n"
        "  - text: TD\n    intents: [stop]\n    style: short\n",
        encoding="utf-8",
    )
    assert main(["intents", "eval", str(f)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^standard\s+1\s+1\.000$", out, re.M)
    assert re.search(r"^short\s+1\s+1\.000$", out, re.M)


def test_an_impossible_date_is_a_file_line_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        'now: "2026-12-02T10:00:00+08:00"\nexamples:\n  - text: 明天还\n'
        "    intents: [promise_to_pay]\n    date: 2026-02-30\n",
        encoding="utf-8",
    )
    assert main(["intents", "eval", str(f)]) == 1
    err = capsys.readouterr().err
    assert f"{f}:3: date:" in err and "Traceback" not in err


def test_json_report_names_the_file_and_carries_styles_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "styled.yaml"
    f.write_text(
        'now: "2026-12-02T10:00:00+08:00"\nexamples:\n'
        "  - text: 好的\n    intents: [promise_to_pay]\n    style: short\n",
        encoding="utf-8",
    )
    assert main(["intents", "eval", str(f), "--json", "--errors"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["file"] == str(f)
    assert doc["styles"] == {"short": {"examples": 1, "primary_accuracy": 0.0}}
    assert len(doc["errors"]) == 1 and "好的" in doc["errors"][0]


def test_data_option_reads_another_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["intents", "check", "--data", str(tmp_path)]) == 1
    assert f"{tmp_path / 'rules.yaml'}: cannot read" in capsys.readouterr().out
    assert main(["classify", "--data", str(tmp_path), "好的"]) == 2
    assert "no rules.yaml" in capsys.readouterr().err


def test_train_says_whether_it_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBOT_CACHE_DIR", str(tmp_path))
    assert main(["intents", "train"]) == 0
    first = capsys.readouterr()
    assert "training the intent model" in first.err
    assert re.search(r"model trained in [\d.]+s on \d{4,} examples", first.out)
    assert main(["intents", "train"]) == 0
    assert "model loaded from the cache" in capsys.readouterr().out


_HEADER = 'now: "2026-12-02T10:00:00+08:00"\ntz: Asia/Shanghai\nexamples:\n'


def _labelled(path: Path, rows: list[tuple[str, str]]) -> Path:
    body = "".join(f'  - text: "{t}"\n    intents: [{i}]\n' for t, i in rows)
    path.write_text(_HEADER + body, encoding="utf-8")
    return path


def test_readers_agreement_is_printed_beside_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    authors = _labelled(
        tmp_path / "set.yaml",
        [("退订", "stop"), ("明天还", "promise_to_pay"), ("我没借过钱", "dispute"), ("TD", "stop")],
    )
    readers = _labelled(
        tmp_path / "readers.yaml",
        [("退订", "stop"), ("明天还", "promise_to_pay"), ("我没借过钱", "refuse_to_pay"),
         ("TD", "stop")],
    )  # fmt: skip
    assert main(["intents", "eval", str(authors), "--readers", str(readers), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["readers"]
    assert got["examples"] == 4
    assert got["readers_primary"] == 0.75
    assert (got["stops_authors"], got["stops_readers"], got["stops_both"]) == (2, 2, 2)
    assert got["model_stop_recall_both"] == 1.0
    assert got["model_primary"] == pytest.approx(
        got["model_vs_readers"]
        + 0.25 * (1 if got["model_primary"] > got["model_vs_readers"] else 0),
        abs=0.26,
    )
    assert main(["intents", "eval", str(authors), "--readers", str(readers)]) == 0
    assert "readers vs authors   primary 0.7500" in capsys.readouterr().out


def test_readers_of_other_texts_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    authors = _labelled(tmp_path / "set.yaml", [("退订", "stop"), ("明天还", "promise_to_pay")])
    readers = _labelled(tmp_path / "readers.yaml", [("明天还", "promise_to_pay"), ("退订", "stop")])
    assert main(["intents", "eval", str(authors), "--readers", str(readers)]) == 2
    assert "texts, in its order" in capsys.readouterr().err

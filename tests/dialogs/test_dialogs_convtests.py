"""The operators' conversation tests double as project tests: every path of the default flow."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from dialogs_support import FIXTURES

from bot.compliance.sim import GateReviewer
from dialogs import conversation as c
from dialogs.convtest import Runner, collect, report, run_paths
from dialogs.registry import DEFAULT_TESTS

CASES = [
    (path, i, test["name"])
    for path in collect([DEFAULT_TESTS])
    for i, test in enumerate(yaml.safe_load(path.read_text(encoding="utf-8"))["tests"])
]


@pytest.fixture(scope="module")
def runner() -> Runner:
    return Runner(gate=GateReviewer.load())  # the real NLU and the compliance gate, loaded once


@pytest.mark.parametrize(
    ("path", "index", "name"), CASES, ids=[f"{p.stem}:{n}" for p, _, n in CASES]
)
def test_default_flow_conversation(runner: Runner, path: Path, index: int, name: str) -> None:
    result = runner.run_file(path)[index]
    assert result.name == name
    assert result.passed, report(result)


def no_nlu(text: str, now: datetime, tz: str) -> c.Reply:
    raise AssertionError("these tests pin every intent")


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(
        f"flow: {FIXTURES / 'valid.yaml'}\n"
        "account: {name: 张三, amount_due: 100, due_date: 2026-11-25}\n"
        'start: "2026-12-02T10:00:00+08:00"\n' + body,
        encoding="utf-8",
    )
    return path


def test_failures_print_a_transcript_and_a_diff(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """tests:
  - name: expects the wrong thing
    steps:
      - start: true
      - say: 嗯
        intent: acknowledge
        expect: {state: waiting, sent: [reminder], text: [您好]}
      - wait: 1d
""",
    )
    out: list[str] = []
    passed, failed, problems = run_paths([path], Runner(understand=no_nlu), out.append)
    assert (passed, failed, problems) == (0, 1, [])
    text = out[0]
    assert text.startswith(f"FAIL {path}:5 expects the wrong thing")
    assert "[12-02 10:00] campaign start → waiting" in text
    assert "sent reminder: 【XX金融】张*您好" in text
    assert "[12-02 10:00] borrower: 嗯 (acknowledge) → human" in text
    assert "step 2 (line 8) expected differently:" in text
    assert "- state: waiting\n    + state: human" in text
    assert "- sent: [reminder]\n    + sent: []" in text
    assert "1d pass" not in text  # steps after the first difference are not run


def test_a_passing_file_and_every_expectation_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """tests:
  - name: all expectations
    steps:
      - start: true
        expect:
          state: waiting
          sent: [reminder]
          text: ["100.00"]
          not_text: [逾期]
          timers: [timeout]
          handoff: false
      - wait: 2d
        expect: {state: human, handoff: silence, no_message: true}
      - say: 退订
        intent: stop
        expect:
          intent: stop
          state: opted_out
          flags: [opted_out]
          not_flags: [paused]
          sent: [stop_confirm]
""",
    )
    out: list[str] = []
    assert run_paths([path], Runner(understand=no_nlu), out.append) == (1, 0, [])
    assert out == [f"ok   {path}:5 all expectations"]


def test_malformed_test_files_are_problems_with_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "tests:\n  - name: x\n    steps:\n      - {say: hi, wait: 1d}\n")
    passed, failed, problems = run_paths([path], Runner(understand=no_nlu), print)
    assert (passed, failed) == (0, 0)
    (problem,) = problems
    assert problem.line == 7
    assert "exactly one of" in problem.message

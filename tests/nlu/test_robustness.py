"""Understanding never raises, whatever str it is given; classify goes on past a bad line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from intents import Intent, Understander
from intents.normalize import without_surrogates
from tests.nlu.conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
# The `smsbot` entry point, run from this checkout whatever is installed.
_PYTHON_CLI = [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())"]

NASTY = [
    "\ud800",
    "明天还\udfff500",
    "\udcff\udcfe",
    "\x00",
    "\x00明天还\x00",
    "".join(chr(c) for c in range(32)),
    "\u202e退订\u202c",  # right-to-left override around a stop word
    "\u200f\u200e\u061c",
    "e" + "\u0301" * 500,  # zalgo: hundreds of combining marks
    "退\u0301订",
    "明" * 100_000,
    "退订" + " " * 100_000,
    "\U0010ffff\ufffe\uffff\U000e0001\uf8ff",
    "\ud83d\ude00 好的",  # a surrogate pair left as two code units
    "𠀀𡀀𪛟",
    "\u2028\u2029\x85\x0b\x0c",
    "﷽" * 50,
    "ﾀﾞ" * 30,
    "\U0001f3fb\u200d" * 40,
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_understand_answers_any_str(nlu: Understander, text: str) -> None:
    u = nlu.understand(text, now=NOW)
    assert u.intents
    # The answer can always be written out (CLI, audit): no lone surrogate left anywhere.
    json.dumps(u.to_json_dict(), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("text", ["\u202e退订\u202c", "退\u0301订", "T\u200bD", "\u2066stop\u2069"])
def test_invisible_characters_do_not_hide_a_stop(nlu: Understander, text: str) -> None:
    assert nlu.understand(text, now=NOW).intent == Intent.STOP


def test_a_surrogate_pair_is_the_character_it_encodes() -> None:
    assert without_surrogates("\ud83d\ude00") == "😀"
    assert without_surrogates("a\ud800b\udfff") == "a\ufffdb\ufffd"


def test_an_unexpected_failure_is_an_answer_not_an_exception(
    nlu: Understander, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = nlu._understand

    def flaky(raw: str, local_now: object) -> object:
        calls.append(raw)
        if len(calls) == 1:
            raise RuntimeError("a bug no test foresaw")
        return real(raw, local_now)  # type: ignore[arg-type]

    monkeypatch.setattr(nlu, "_understand", flaky)
    assert nlu.understand("别再发了\u2603", now=NOW).intent == Intent.STOP
    assert len(calls) == 2  # read again as plain text, where the stop request survives

    def broken(raw: str, local_now: object) -> object:
        raise RuntimeError("always")

    monkeypatch.setattr(nlu, "_understand", broken)
    assert nlu.understand("明天还", now=NOW).intent == Intent.UNKNOWN


def test_classify_subprocess_reports_bad_lines_and_goes_on() -> None:
    stdin = (
        "明天还500\n".encode()
        + b"\xff\xfe bad bytes\n"
        + "\ud800".encode("utf-8", "surrogatepass")  # a surrogate written out as UTF-8
        + b"\n"
        + "退订".encode("utf-8", "surrogateescape")
        + b"\x80\n"
        + "\x00好的\u202e\n".encode()
        + b"TD\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [*_PYTHON_CLI, "classify", "--now", "2026-12-02T10:00:00+08:00"],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr.decode(errors="replace")
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(rows) == 6  # one row per input line, bad ones included
    assert [r.get("intent") for r in rows] == [
        "promise_to_pay",
        None,
        None,
        None,
        rows[4]["intent"],
        "stop",
    ]
    assert rows[4]["intent"] is not None
    err = proc.stderr.decode()
    for n in (2, 3, 4):
        assert f"line {n}: not UTF-8" in err
        assert rows[n - 1]["input"] == f"line {n}"
    assert "Traceback" not in err


def test_huge_replies_are_not_kept_whole_in_the_caches(nlu: Understander) -> None:
    huge = "明天还500" + "啊" * 100_000
    first = nlu.understand(huge, now=NOW)
    again = nlu.understand(huge, now=NOW)
    assert again.entities == first.entities and again.intent == first.intent
    assert all(len(text) <= 2_000 for text, _day in nlu._answers)

"""The rule-pack file: validated, with errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from policy.pack import DEFAULT_FILE, load_packs


def test_the_project_packs_load() -> None:
    packs = load_packs()
    assert packs.default_pack == "cn"
    assert set(packs.packs) == {"cn", "us"}


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "compliance.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    (tmp_path / "lexicons").symlink_to(DEFAULT_FILE.parent / "lexicons")
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'start: "08:00"',
            'start: "22:30"',
            r"compliance.yaml:\d+: packs.cn.window: need start < end",
        ),
        (
            "proactive_max_per_day: 1",
            "proactive_max_per_day: -1",
            r"compliance.yaml:\d+: packs.cn.frequency.proactive_max_per_day",
        ),
        (
            "timezone_default: Asia/Shanghai",
            "timezone_default: Mars/Base",
            r"unknown time zone 'Mars/Base'",
        ),
        (
            "lexicons: [lexicons/cn.yaml]",
            "lexicons: [lexicons/none.yaml]",
            r"compliance.yaml:\d+: packs.cn.content.lexicons.0: no such file",
        ),
        (
            "default_pack: cn",
            "default_pack: eu",
            r"compliance.yaml:6: default_pack 'eu' is not one of",
        ),
        ("    holds:", "    hold_flags: []\n    holds:", r"hold_flags"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_packs(_broken(tmp_path, old, new))

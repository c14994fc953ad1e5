"""`flows validate` and the send-time gate agree (issue 16, items 11 and 12).

A template's text is put into the smallest valid flow (tests/dialogs/fixtures/valid.yaml); the
validator's problems name rule ids, and so does the gate's decision for the same rendered text:
the two sets must be equal. Approval (`compliance_approved`) names a reviewer and a date, covers
soft-risk wording only, and `flows validate` lists what it covers.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from meaning_cases import LAUNDERED, PROHIBITED

from bot.cli import main
from bot.compliance.gate import Gate, GateContext
from bot.records import Outbound
from common.errors import Problem
from dialogs.flow import load_flow
from dialogs.registry import check_flow
from dialogs.template_checks import approvals, typical_text
from policy.rulebook import default_policy

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "tests" / "dialogs" / "fixtures" / "valid.yaml"
REMINDER = "【{signature}】{name}您好，您的借款待还{amount_due}元，请致电{hotline}。"
SH = ZoneInfo("Asia/Shanghai")
RULE_ID = re.compile(r"^([A-Z]+-[A-Z0-9]+(?:-[0-9]+)?(?:/[\w-]+)?): ")


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate.load()


def flow_file(tmp_path: Path, text: str, approval: str = "") -> Path:
    quoted = text.replace('"', '\\"')
    line = f'  reminder: {{text: "{quoted}"{approval}}}'
    src = VALID.read_text(encoding="utf-8")
    old = f'  reminder: {{text: "{REMINDER}"}}'
    assert old in src
    path = tmp_path / "flow.yaml"
    path.write_text(src.replace(old, line), encoding="utf-8")
    return path


def validator_rules(problems: list[Problem]) -> set[str]:
    return {m.group(1) for p in problems if (m := RULE_ID.match(p.message))}


def gate_rules(gate: Gate, path: Path) -> set[str]:
    flow = load_flow(path)
    tpl = flow.templates["reminder"]
    msg = Outbound(
        account_id="A1",
        phone="+8613800000001",
        text=typical_text(flow, tpl),
        template="reminder",
        created_at=datetime(2026, 12, 2, 10, tzinfo=SH),
        kind="proactive",
        debt_content=tpl.debt_content,
        approved=tpl.approved,
    )
    ctx = GateContext(pack=gate.pack("cn"), zones=[SH], first_contact=True)
    decision = gate.decide(msg, ctx, datetime(2026, 12, 2, 10, tzinfo=SH))
    return set(decision.rules)


TEMPLATES = [
    REMINDER,  # fine: both say nothing
    "【{signature}】{name}您好，您的借款待还{amount_due}元，请尽快处理。",  # no hotline
    "【{signature}】{name}您好，您的借款待还{amount_due}元，逾期将上报征信。致电{hotline}。",
    "【{signature}】{name}您好，您的借款待还{amount_due}元，否则后果自负。致电{hotline}。",
    "【{signature}】您好，身份证110101199003071234已登记，请致电{hotline}。",
    "【{signature}】{name}您好，【重要】您的借款待还{amount_due}元，请致电{hotline}。",
    "【{signature}】我们是法院的，您的借款待还{amount_due}元，请致电{hotline}。",
    *(f"【{{signature}}】{body}，请致电{{hotline}}。" for _, body in PROHIBITED[::4]),
]


@pytest.mark.parametrize("text", TEMPLATES)
def test_validator_and_gate_name_the_same_rules(gate: Gate, tmp_path: Path, text: str) -> None:
    path = flow_file(tmp_path, text)
    _, problems = check_flow(path)
    assert validator_rules(problems) == gate_rules(gate, path), "\n".join(map(str, problems))


def test_a_template_without_the_hotline_fails_validation_where_it_stands(tmp_path: Path) -> None:
    path = flow_file(tmp_path, TEMPLATES[1])
    _, problems = check_flow(path)
    (p,) = [p for p in problems if p.message.startswith("CN-CONTENT-05/contact")]
    assert (p.file, p.line, p.field) == (str(path), 6, "templates.reminder.text")
    assert "official channel" in (p.hint or "")


APPROVED = ", compliance_approved: {approved_by: 李四（合规部）, approved_at: 2026-11-30}"


@pytest.mark.parametrize(("rule", "body"), LAUNDERED)
def test_an_approval_never_covers_a_threat(
    gate: Gate, tmp_path: Path, rule: str, body: str
) -> None:
    path = flow_file(tmp_path, f"【{{signature}}】{body}，请致电{{hotline}}。", APPROVED)
    _, problems = check_flow(path)
    assert rule in validator_rules(problems)
    assert rule in gate_rules(gate, path)


def test_approval_without_a_reviewer_is_refused(tmp_path: Path) -> None:
    path = flow_file(tmp_path, TEMPLATES[2], ", compliance_approved: true")
    _, problems = check_flow(path)
    (p,) = problems
    assert p.field == "templates.reminder.compliance_approved" and p.line == 6
    assert "approved_by" in p.message


def test_approval_covers_soft_wording_and_validate_lists_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = flow_file(tmp_path, TEMPLATES[2], APPROVED)
    assert check_flow(path)[1] == []
    (line,) = approvals(load_flow(path), default_policy())
    assert line == (
        "approval reminder: by 李四（合规部） on 2026-11-30; covers "
        "CN-CONTENT-02/legal-wording (上报征信)"
    )
    assert main(["flows", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "approval reminder: by 李四（合规部） on 2026-11-30; covers CN-CONTENT-02" in out


def test_an_unknown_rule_pack_is_named(tmp_path: Path) -> None:
    path = flow_file(tmp_path, REMINDER)
    text = path.read_text(encoding="utf-8").replace(
        'hotline: "95XXX"}', 'hotline: "95XXX", compliance_pack: nc}'
    )
    path.write_text(text, encoding="utf-8")
    _, problems = check_flow(path)
    (p,) = problems
    assert p.field == "settings.compliance_pack" and "no rule pack 'nc'" in p.message

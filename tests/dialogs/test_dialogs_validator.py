"""One broken fixture per validator error class, plus the flows that must pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from dialogs_support import FIXTURES

from common.errors import Problem
from dialogs.flow import load_flow
from dialogs.registry import DEFAULT_FLOWS, check_flow

BROKEN = FIXTURES / "broken"

# fixture file → (fragment of the message, field the problem names, line it points at)
CASES: dict[str, tuple[str, str | None, int]] = {
    "yaml_syntax": ("YAML syntax error", None, 21),
    "duplicate_key": ("duplicate key 'done'", "states.done", 29),
    "unknown_field": ("unknown field 'rule'", "states.waiting.rule", 21),
    "unknown_intent": ("unknown intent 'hardshp'", "global_rules[3].when", 13),
    "bad_duration": ("is not a duration", "states.waiting.timeout.after", 20),
    "unknown_state": ("target state 'wiating' is not defined", "states.new.rules[0].to", 18),
    "unknown_template": ("template 'remindr' is not defined", "states.new.rules[0].do[0].send", 18),
    "unknown_timer": ("timer 'nudge' is never scheduled", "states.human.rules[2].when", 28),
    "stop_not_opted_out": ("`stop` must lead to an opted-out state", "global_rules[0]", 10),
    "stop_without_flag": ("`stop` must set the `opted_out` flag", "global_rules[0]", 10),
    "stop_debt_content": ("`stop` answers with debt content", "global_rules[0]", 10),
    "stop_two_messages": ("at most one confirmation", "global_rules[0]", 10),
    "wrong_number_debt": ("`wrong_number` answers with debt content", "global_rules[1]", 11),
    "dispute_no_pause": ("`dispute` must pause collection and hand off", "global_rules[2]", 12),
    "missing_handler": ("has no handler for intent(s) promise_to_pay", "states.new", 15),
    "no_timeout": ("waiting state 'waiting' has no timeout", "states.waiting", 19),
    "unreachable": ("state 'limbo' is unreachable", "states.limbo", 29),
    "dead_end": ("dead end", "states.human", 24),
    "terminal_with_rules": ("terminal state 'done' has rules", "states.done", 28),
    "timeout_without_target": ("must name a state", "states.waiting.rules[0].to", 22),
    "no_start": ("does not answer `start`", "states.new", 16),
    "always_in_state": ("`always` only means something", "states.waiting.rules[0].always", 22),
    "unknown_variable": ("unknown variable {amount}", "templates.reminder.text", 6),
    "unavailable_variable": ("{promised_date}, which may", "states.new.rules[0].do[0].send", 18),
    "too_long": ("3 SMS, over the limit of 2", "templates.reminder.text", 6),
    "no_signature": ("must start with 【{signature}】", "templates.stop_confirm.text", 7),
    "prohibited_wording": ("prohibited wording '后果自负'", "templates.reminder.text", 6),
    "soft_risk": ("soft-risk wording 上报征信", "templates.reminder.text", 6),
    "no_hotline": ("CN-CONTENT-05/contact: missing official contact", "templates.reminder.text", 6),
    "approved_threat": ("CN-CONTENT-01/visit-threat: prohibited wording", "templates.reminder.text", 6),
    "approval_without_reviewer": ("records its reviewer", "templates.reminder.compliance_approved", 6),
    "debt_content_mislabelled": ("mentions 还款", "templates.sorry.debt_content", 8),
    "missing_provider_code": ("no template code for provider(s)", "templates.reminder.codes", 6),
    "agent_sends_debt": ("in agent-owned state 'human'", "states.human.rules[0].do[0].send", 26),
    "next_instalment_unguarded": ("`next_instalment` needs a further instalment", "states.human.rules[1].do[0].next_instalment", 27),
    "next_instalment_in_entry": ("`next_instalment` in entry actions", "states.human.entry[0].next_instalment", 25),
}  # fmt: skip


def problems_of(path: Path) -> list[Problem]:
    return check_flow(path)[1]


def test_every_broken_fixture_has_a_case() -> None:
    assert {p.stem for p in BROKEN.glob("*.yaml")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_fixture_is_reported_with_file_line_field_and_hint(name: str) -> None:
    fragment, field, line = CASES[name]
    problems = problems_of(BROKEN / f"{name}.yaml")
    matching = [p for p in problems if fragment in p.message]
    assert matching, "\n".join(map(str, problems))
    problem = matching[0]
    assert problem.file.endswith(f"{name}.yaml")
    assert problem.line == line
    assert problem.field == field
    # schema errors carry their advice in the message
    if field is not None and not problem.message.startswith(
        ("unknown intent", "2 is not", "an approval records")
    ):
        assert problem.hint, problem


@pytest.mark.parametrize("path", [FIXTURES / "valid.yaml", DEFAULT_FLOWS / "collections.yaml"])
def test_good_flows_have_no_problems(path: Path) -> None:
    assert problems_of(path) == []


def test_hints_suggest_close_names() -> None:
    (problem,) = problems_of(BROKEN / "unknown_state.yaml")
    assert problem.hint == "did you mean 'waiting'?"
    assert str(problem).startswith(f"{problem.file}:18: states.new.rules[0].to: target state")


def test_problems_on_a_global_rule_name_every_state_once() -> None:
    problems = problems_of(BROKEN / "stop_debt_content.yaml")
    (problem,) = [p for p in problems if "debt content" in p.message]
    assert "(in state new, waiting, human)" in problem.message


def test_yaml_one_point_two_booleans_keep_opt_out_words() -> None:
    # YAML 1.1 would read N, no and on as booleans; an opt-out keyword must stay text.
    from common.yamlio import load_yaml_text

    doc = load_yaml_text("a: N\nb: on\nc: true\n", "x.yaml")
    assert doc.data == {"a": "N", "b": "on", "c": True}
    assert doc.line(("b",)) == 2


def test_template_files_are_loaded_and_hashed_into_the_version(tmp_path: Path) -> None:
    flow = load_flow(DEFAULT_FLOWS / "collections.yaml")
    assert "stop_confirm" in flow.templates
    assert flow.template_sources["stop_confirm"].doc.file.endswith("templates/collections.yaml")
    copy = tmp_path / "flows"
    copy.mkdir()
    (tmp_path / "templates").mkdir()
    src = DEFAULT_FLOWS.parent / "templates" / "collections.yaml"
    (tmp_path / "templates" / "collections.yaml").write_text(src.read_text() + "\n# edited\n")
    (copy / "collections.yaml").write_text((DEFAULT_FLOWS / "collections.yaml").read_text())
    assert load_flow(copy / "collections.yaml").version != flow.version


def test_missing_template_file_is_reported(tmp_path: Path) -> None:
    text = (
        (FIXTURES / "valid.yaml")
        .read_text()
        .replace("initial: new", "initial: new\ntemplate_files: [nope.yaml]")
    )
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    (problem,) = problems_of(path)
    assert "template file 'nope.yaml' not found" in problem.message
    assert problem.field == "template_files[0]"


def test_a_promised_sum_is_certain_only_where_the_rule_asks_for_it(tmp_path: Path) -> None:
    """`promise_has_amount: true` makes `{promised_amount}` certain in its rule; without it
    the promised day's sum may have no value (a promise without one), and the validator says
    so."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "templates").mkdir()
    src = DEFAULT_FLOWS.parent / "templates" / "collections.yaml"
    (tmp_path / "templates" / "collections.yaml").write_text(src.read_text())
    flow = (DEFAULT_FLOWS / "collections.yaml").read_text()
    guard = "        if: {promise_has_amount: true}\n"
    assert guard in flow
    path = tmp_path / "flows" / "collections.yaml"
    path.write_text(flow)
    assert problems_of(path) == []
    path.write_text(flow.replace(guard, ""))
    problems = problems_of(path)
    assert any(
        "promise_day_reminder_amount" in p.message and "{promised_amount}" in p.message
        for p in problems
    ), problems

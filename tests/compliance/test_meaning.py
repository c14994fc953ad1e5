"""Meaning rules (who × action × target, with negation and quotation) against tables of prohibited
paraphrases, benign collection texts, approved-only wording and threats dressed as approved
wording; and the project's own templates, rendered with sample values, which must never hit.

The figures of the report: ``pytest tests/compliance/test_meaning.py -q -k "prohibited"`` etc.;
``test_figures`` prints all of them in one line (``-s``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from meaning_cases import APPROVED_ONLY, BENIGN, LAUNDERED, PROHIBITED

from common.errors import ConfigError
from dialogs.registry import Registry
from dialogs.templates import render, sample_values
from policy.content import ContentChecker, Finding, blocking
from policy.meaning import load_meaning_rules
from policy.pack import CONFIG_DIR, load_packs

CN_PACK = load_packs().packs["cn"]


@pytest.fixture(scope="module", params=["rust", "python"])
def cn(request: pytest.FixtureRequest) -> ContentChecker:
    return ContentChecker.load(CN_PACK, CONFIG_DIR, use_rust=request.param == "rust")


CN = ContentChecker.load(CN_PACK, CONFIG_DIR)  # for the hypothesis tests (no fixtures there)


def cn_text(body: str) -> str:
    return f"【XX金融】{body}。详询XX消费金融官方App或95XXX。"


def stops(checker: ContentChecker, text: str, *, approved: bool) -> list[Finding]:
    found = checker.check(text, approved_template=approved, first_contact=False)
    return blocking(found, approved=approved, debt_content=True)


def block_rules(checker: ContentChecker, text: str) -> set[str]:
    found = checker.check(text, approved_template=True, first_contact=False)
    return {f.rule for f in found if f.severity == "block"}


@pytest.mark.parametrize(("rule", "body"), PROHIBITED, ids=[b for _, b in PROHIBITED])
def test_prohibited_paraphrase_is_blocked_by_its_meaning_rule(
    cn: ContentChecker, rule: str, body: str
) -> None:
    assert rule in block_rules(cn, cn_text(body))


@pytest.mark.parametrize("body", BENIGN)
def test_benign_collection_text_passes(cn: ContentChecker, body: str) -> None:
    assert stops(cn, cn_text(body), approved=False) == []


@pytest.mark.parametrize("body", APPROVED_ONLY)
def test_factual_legal_wording_is_soft_never_blocked(cn: ContentChecker, body: str) -> None:
    text = cn_text(body)
    assert {f.severity for f in stops(cn, text, approved=False)} == {"soft"}
    assert stops(cn, text, approved=True) == []


@pytest.mark.parametrize(("rule", "body"), LAUNDERED, ids=[b for _, b in LAUNDERED])
def test_approval_does_not_launder_a_threat(cn: ContentChecker, rule: str, body: str) -> None:
    assert rule in {f.rule for f in stops(cn, cn_text(body), approved=True)}


def _shipped() -> list[tuple[str, str, bool, bool]]:
    out = []
    for name in Registry.load().names():
        flow = Registry.load().get(name).flow
        settings = flow.spec.settings
        for typical in (
            sample_values(settings, name="张*", last4="1234", amount_due="3200.00"),
            sample_values(settings),  # the longest values
        ):
            for tname, spec in flow.templates.items():
                text = render(spec.text, typical)
                out.append((f"{name}.{tname}", text, spec.approved, spec.debt_content))
    return out


SHIPPED = _shipped()


@pytest.mark.parametrize(("name", "text", "approved", "debt"), SHIPPED)
def test_shipped_templates_have_no_false_positives(
    cn: ContentChecker, name: str, text: str, approved: bool, debt: bool
) -> None:
    found = cn.check(text, approved_template=approved, first_contact=True)
    assert blocking(found, approved=approved, debt_content=debt) == [], name
    assert not [f for f in found if f.source], name  # no meaning rule fires at all


def test_every_meaning_rule_has_why_and_source_and_a_table_row() -> None:
    rules = load_meaning_rules([CONFIG_DIR / ref for ref in CN_PACK.content.meaning])
    assert rules.rules
    for rule in rules.rules:
        assert rule.why and rule.source, rule.id
    assert {r.id for r in rules.rules if r.severity == "block"} <= {r for r, _ in PROHIBITED}


def test_figures(cn: ContentChecker, capsys: pytest.CaptureFixture[str]) -> None:
    caught = sum(rule in block_rules(cn, cn_text(body)) for rule, body in PROHIBITED)
    benign = sum(not stops(cn, cn_text(body), approved=False) for body in BENIGN)
    fp = sum(
        bool(
            blocking(
                cn.check(t, approved_template=a, first_contact=True), approved=a, debt_content=d
            )
        )
        for _, t, a, d in SHIPPED
    )
    with capsys.disabled():
        print(
            f"\nprohibited caught {caught}/{len(PROHIBITED)}; benign passing {benign}/{len(BENIGN)}; "
            f"shipped-template renderings {len(SHIPPED)}, false positives {fp}"
        )
    assert (caught, benign, fp) == (len(PROHIBITED), len(BENIGN), 0)


# --- composition: benign company never launders a threat ---------------------------------------

PUNCT = ["。", "，", "！", "；", "\n", " "]


@settings(max_examples=300, deadline=None)
@given(
    threat=st.sampled_from(PROHIBITED),
    benign=st.sampled_from(BENIGN),
    sep=st.sampled_from(PUNCT),
    before=st.booleans(),
)
# Found by this property (2026-12-05): a space after a closed quotation did not end its
# sentence, so the warning that followed framed the quoted threat as an example.
@example(
    threat=("CN-3P-01/tell-contacts", "我们的原话是：“三天内不还就通知你家人”"),
    benign="请您告知家人注意防范电信诈骗",
    sep=" ",
    before=False,
)
def test_a_threat_next_to_benign_text_is_still_blocked(
    threat: tuple[str, str], benign: str, sep: str, before: bool
) -> None:
    rule, body = threat
    # a sentence end or a space keeps the parts apart; a comma keeps them in one sentence
    text = f"{benign}。{body}" if before else f"{body}{sep if sep != '，' else '。'}{benign}"
    assert rule in block_rules(CN, cn_text(text))


@settings(max_examples=300, deadline=None)
@given(a=st.sampled_from(BENIGN), b=st.sampled_from(BENIGN))
@example(a="逾期期间您的借款额度将被冻结", b="您的逾期不会影响您的家人")  # 冻结。您的 ≠ 冻结你的
def test_two_benign_sentences_pass(a: str, b: str) -> None:
    assert stops(CN, cn_text(f"{a}。{b}"), approved=False) == []


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            list("我们不会将通知你您家人单位同事上门前往法院是的冻结征信“”，。！？ 、就还请可以")
        ),
        max_size=60,
    )
)
def test_any_text_is_checked_without_error(text: str) -> None:
    CN.check(cn_text(text), approved_template=False, first_contact=False)


# --- the rule file is validated like the rest of config ------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment", "line"),
    [
        (
            "words: {a: [我们]}\nrules: [{id: X-1, category: c, severity: block, why: w, match: [[a]]}]\n",
            "source",
            2,
        ),
        (
            "words: {a: [我们]}\nrules: [{id: X-1, category: c, severity: block, why: w, source: s, match: [[b]]}]\n",
            "unknown word class 'b'",
            2,
        ),
        (
            "words: {a: [我们]}\nrules: [{id: X-1, category: c, severity: hard, why: w, source: s, match: [[a]]}]\n",
            "severity",
            2,
        ),
        (
            "words: {a: ['。']}\nrules: [{id: X-1, category: c, severity: block, why: w, source: s, match: [[a]]}]\n",
            "empty",
            1,
        ),
        (
            "words: {a: [我们]}\nrules:\n  - {id: X-1, category: c, severity: block, why: w, source: s, match: [[a]]}\n"
            "  - {id: X-1, category: c, severity: block, why: w, source: s, match: [[a]]}\n",
            "duplicate rule id",
            4,
        ),
    ],
)
def test_meaning_file_errors_name_file_and_line(
    tmp_path: Path, text: str, fragment: str, line: int
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_meaning_rules([path])
    hits = [p for p in err.value.problems if fragment in str(p)]
    assert hits, err.value
    assert hits[0].file.endswith("m.yaml") and hits[0].line == line

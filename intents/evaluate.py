"""Measures the NLU on labelled examples: per-intent P/R/F1, macro-F1, primary accuracy,
confusion matrix of primary intents, and exact-match of dates, ranges, amounts and installments."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from intents.data import Example
from intents.model import Intent, Understanding
from intents.nlu import Understander


@dataclass
class _Exact:
    """Exact match over examples where a value was expected or found (false finds count)."""

    right: int = 0
    total: int = 0

    def add(self, expected: object, got: object) -> bool:
        if expected is None and got is None:
            return True
        self.total += 1
        ok = expected == got
        self.right += ok
        return ok

    @property
    def score(self) -> float:
        return self.right / self.total if self.total else 1.0


@dataclass
class Report:
    n: int = 0
    primary_right: int = 0
    tp: dict[Intent, int] = field(default_factory=lambda: dict.fromkeys(Intent, 0))
    fp: dict[Intent, int] = field(default_factory=lambda: dict.fromkeys(Intent, 0))
    fn: dict[Intent, int] = field(default_factory=lambda: dict.fromkeys(Intent, 0))
    confusion: dict[Intent, dict[Intent, int]] = field(
        default_factory=lambda: {a: dict.fromkeys(Intent, 0) for a in Intent}
    )
    date: _Exact = field(default_factory=_Exact)
    date_range: _Exact = field(default_factory=_Exact)
    amount: _Exact = field(default_factory=_Exact)
    installments: _Exact = field(default_factory=_Exact)
    errors: list[str] = field(default_factory=list)
    # Per example, in order: what was predicted (for paired comparisons with a baseline).
    primaries: list[Intent] = field(default_factory=list)
    predicted: list[frozenset[Intent]] = field(default_factory=list)
    # Per style (DATA.md): examples and right primaries.
    styles: dict[str, list[int]] = field(default_factory=dict)

    def precision(self, i: Intent) -> float:
        d = self.tp[i] + self.fp[i]
        return self.tp[i] / d if d else 1.0

    def recall(self, i: Intent) -> float:
        d = self.tp[i] + self.fn[i]
        return self.tp[i] / d if d else 1.0

    def f1(self, i: Intent) -> float:
        p, r = self.precision(i), self.recall(i)
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def macro_f1(self) -> float:
        used = [i for i in Intent if self.tp[i] + self.fn[i] > 0]
        return sum(self.f1(i) for i in used) / len(used) if used else 0.0

    @property
    def accuracy(self) -> float:
        return self.primary_right / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.n,
            "primary_accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "intents": {
                i.value: {
                    "precision": round(self.precision(i), 4),
                    "recall": round(self.recall(i), 4),
                    "f1": round(self.f1(i), 4),
                    "support": self.tp[i] + self.fn[i],
                }
                for i in Intent
            },
            "date_exact": round(self.date.score, 4),
            "date_range_exact": round(self.date_range.score, 4),
            "amount_exact": round(self.amount.score, 4),
            "installments_exact": round(self.installments.score, 4),
            "confusion": {
                a.value: {b.value: n for b, n in row.items() if n}
                for a, row in self.confusion.items()
            },
            "styles": {
                style: {"examples": n, "primary_accuracy": round(right / n, 4)}
                for style, (n, right) in self.styles.items()
            },
        }


def evaluate(nlu: Understander, examples: list[Example], now: datetime, tz: str) -> Report:
    report = Report()
    for e in examples:
        u = nlu.understand(e.text, now=now, tz=tz)
        _score(report, e, u)
    return report


def _score(report: Report, e: Example, u: Understanding) -> None:
    report.n += 1
    expected_primary = Intent.STOP if Intent.STOP in e.intents else e.primary
    report.confusion[expected_primary][u.intent] += 1
    ok = u.intent == expected_primary
    report.primary_right += ok
    got = {s.name for s in u.intents}
    report.primaries.append(u.intent)
    report.predicted.append(frozenset(got))
    if e.style is not None:
        tally = report.styles.setdefault(e.style, [0, 0])
        tally[0] += 1
        tally[1] += ok
    want = set(e.intents)
    for i in Intent:
        if i in got and i in want:
            report.tp[i] += 1
        elif i in got:
            report.fp[i] += 1
        elif i in want:
            report.fn[i] += 1
    ent = u.entities
    checks = [
        report.date.add(e.date, ent.date),
        report.date_range.add(e.date_range, ent.date_range),
        report.amount.add(e.amount, ent.amount),
        report.installments.add(e.installments, ent.installments),
    ]
    if not ok or got != want or not all(checks):
        report.errors.append(
            f"{e.file}:{e.line}: {e.text!r} want {[i.value for i in e.intents]} "
            f"{_ents(e.date, e.date_range, e.amount, e.installments)} got "
            f"{[s.name.value for s in u.intents]} "
            f"{_ents(ent.date, ent.date_range, ent.amount, ent.installments)}"
        )


def _ents(*values: object) -> str:
    names = ("date", "range", "amount", "inst")
    return (
        "{"
        + ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True) if v is not None)
        + "}"
    )


# Column heads of the confusion matrix, one per intent and distinct (request_plan and
# request_human both begin "reques").
_SHORT = {
    Intent.PROMISE_TO_PAY: "promis", Intent.ALREADY_PAID: "paid", Intent.DISPUTE: "disput",
    Intent.HARDSHIP: "hardsh", Intent.REQUEST_PLAN: "plan", Intent.REFUSE_TO_PAY: "refuse",
    Intent.STOP: "stop", Intent.WRONG_NUMBER: "wrong", Intent.REQUEST_HUMAN: "human",
    Intent.ASK_INFO: "info", Intent.ABUSE: "abuse", Intent.ACKNOWLEDGE: "ack",
    Intent.UNKNOWN: "unknwn",
}  # fmt: skip


def format_styles(report: Report) -> str:
    """Primary accuracy per style, when the examples carry one."""
    if not report.styles:
        return ""
    lines = [f"{'style':<16}{'examples':>9}{'accuracy':>10}"]
    for style, (n, right) in sorted(report.styles.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{style:<16}{n:>9}{right / n:>10.3f}")
    return "\n".join(lines)


def format_report(report: Report, *, show_errors: bool = False) -> str:
    exact = [
        ("date exact", report.date),
        ("date_range exact", report.date_range),
        ("amount exact", report.amount),
        ("installments", report.installments),
    ]
    lines = [
        f"examples          {report.n}",
        f"primary accuracy  {report.accuracy:.4f}",
        f"macro-F1          {report.macro_f1:.4f}",
        *(f"{name:<18}{e.score:.4f}  ({e.right}/{e.total})" for name, e in exact),
        "",
        f"{'intent':<16}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}",
    ]
    for i in Intent:
        support = report.tp[i] + report.fn[i]
        if not support and not report.fp[i]:
            # Neither expected nor predicted: no figure, and not in macro-F1.
            lines.append(f"{i.value:<16}{'-':>10}{'-':>8}{'-':>8}{0:>9}")
            continue
        lines.append(
            f"{i.value:<16}{report.precision(i):>10.3f}{report.recall(i):>8.3f}"
            f"{report.f1(i):>8.3f}{support:>9}"
        )
    lines.append("(macro-F1 averages the intents with support)")
    short = _SHORT
    lines += ["", "confusion (rows: expected primary, columns: predicted primary)"]
    lines.append(" " * 16 + "".join(f"{short[i]:>7}" for i in Intent))
    for a in Intent:
        lines.append(
            f"{a.value:<16}" + "".join(f"{report.confusion[a][b] or '.':>7}" for b in Intent)
        )
    if show_errors and report.errors:
        lines += ["", f"errors ({len(report.errors)})", *report.errors]
    return "\n".join(lines)

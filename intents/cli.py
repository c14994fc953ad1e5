"""``smsbot classify`` and ``smsbot intents eval|check|train``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "classify",
        help="understand borrowers' replies, one JSON object per message",
        description="Prints one JSON line per message: intent, intents with scores, entities "
        "and the explanation. Without TEXT, reads one message per line from stdin.",
    )
    p.add_argument("--now", help="ISO-8601 time the messages were received (default: now)")
    p.add_argument("--tz", default="Asia/Shanghai", help="borrower's IANA time zone")
    p.add_argument("texts", nargs="*", metavar="TEXT")
    _data_option(p)
    p.set_defaults(handler=_classify)

    intents = sub.add_parser("intents", help="evaluate and check the intent data")
    isub = intents.add_subparsers(dest="intents_command", required=True, metavar="COMMAND")
    ev = isub.add_parser("eval", help="precision/recall/F1, accuracy, confusion, entity match")
    ev.add_argument("file", nargs="?", type=Path, help="labelled file (default: the held-out set)")
    ev.add_argument("--errors", action="store_true", help="list every misread example")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.add_argument(
        "--baseline",
        action="store_true",
        help="also train the plain TF-IDF char-1-3 + logistic regression baseline on the same "
        "training data and print it beside, with the difference and its 95%% interval",
    )
    ev.add_argument(
        "--readers",
        type=Path,
        metavar="FILE",
        help="the same texts labelled again by readers who saw only DATA.md: print how often "
        "they agree with the file's labels, beside the model (the ceiling the labels allow)",
    )
    ev.add_argument(
        "--cv",
        action="store_true",
        help="instead of a file: cross-validate on the training data (thresholds, which rules "
        "count, out-of-fold figures)",
    )
    ev.add_argument(
        "--rules",
        action="store_true",
        help="instead of a file: every rule's firing count, precision and F1 contribution on "
        "the training data; lists rules that never fire or hurt",
    )
    _data_option(ev)
    ev.set_defaults(handler=_eval)
    ck = isub.add_parser("check", help="validate the data files (file:line: message)")
    _data_option(ck)
    ck.set_defaults(handler=_check)
    tr = isub.add_parser(
        "train",
        help="train the model now and fill the cache",
        description="Loads the model, training it when the data or code changed since the "
        "cached one (or always, with --force), and says which and how long it took.",
    )
    tr.add_argument("--force", action="store_true", help="train even if the cache is fresh")
    _data_option(tr)
    tr.set_defaults(handler=_train)


def _data_option(parser: Any) -> None:
    from intents.data import DATA_DIR

    parser.add_argument(
        "--data",
        type=Path,
        default=DATA_DIR,
        metavar="DIR",
        help=f"the intent data directory (rules.yaml, train/, evaluation sets; default {DATA_DIR})",
    )


def _announce(message: str) -> None:
    print(f"smsbot: {message} …", file=sys.stderr, flush=True)


def _load(args: argparse.Namespace, *, retrain: bool = False) -> Any:
    from intents.nlu import Understander

    if not (args.data / "rules.yaml").is_file():
        raise UsageError(f"--data: no rules.yaml in {args.data}")
    return Understander.load(args.data, retrain=retrain, announce=_announce)


def parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"--now: not an ISO-8601 time: {value!r}") from exc


def _classify(args: argparse.Namespace) -> int:
    from intents.nlu import resolve_tz

    now = parse_now(args.now)
    resolve_tz(args.tz)  # a bad zone is a usage error before anything loads
    nlu = _load(args)
    out = sys.stdout
    bad = 0
    for where, given in _inputs(args.texts):
        # One bad message (bytes that are not UTF-8) is reported in its place, on stdout so
        # outputs stay line for line with inputs, and on stderr; the rest are still read.
        try:
            text = _decoded(given)
            row = nlu.understand(text, now=now, tz=args.tz).to_json_dict()
        except UnicodeDecodeError as exc:
            row = {
                "input": where,
                "error": f"not UTF-8 (byte 0x{exc.object[exc.start]:02x} "
                f"at offset {exc.start}); skipped",
            }
        except Exception as exc:  # never expected: reported, and the batch goes on
            row = {"input": where, "error": f"not understood: {type(exc).__name__}: {exc}"}
        if "error" in row:
            bad += 1
            print(f"smsbot classify: {where}: {row['error']}", file=sys.stderr)
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.flush()
    return 1 if bad else 0


def _inputs(texts: list[str]) -> Iterator[tuple[str, str | bytes]]:
    """Each message with where it came from; bytes where they are not decoded yet."""
    if texts:
        for i, text in enumerate(texts, 1):
            # The bytes as typed: argv decodes undecodable bytes to lone surrogates. A str
            # no file system encoding produces (a caller's "\ud800") is passed on as it is:
            # understand() reads any str.
            try:
                yield f"argument {i}", os.fsencode(text)
            except UnicodeError:
                yield f"argument {i}", text
        return
    lines: Iterable[str | bytes] = getattr(sys.stdin, "buffer", sys.stdin)
    for n, line in enumerate(lines, 1):
        yield f"line {n}", line


def _decoded(given: str | bytes) -> str:
    if isinstance(given, bytes):
        return given.rstrip(b"\r\n").decode("utf-8")
    return given.rstrip("\r\n")


def _eval(args: argparse.Namespace) -> int:
    from intents.data import HELDOUT_FILE, load_heldout
    from intents.evaluate import evaluate, format_report, format_styles

    if args.cv or args.rules:
        if args.file is not None:
            raise UsageError("--cv and --rules measure the training data; give no FILE")
        return _training_report(args.data, rules_report=args.rules)
    path: Path = args.file or args.data / HELDOUT_FILE.name
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    heldout = load_heldout(path)
    # A bad readers' file is said before the NLU loads and the set is read, not after.
    second = _read_labels(args.readers) if args.readers else None
    report = evaluate(_load(args), heldout.examples, heldout.now, heldout.tz)
    comparison = _baseline(report, heldout.examples, args.data) if args.baseline else None
    readers = None
    if second is not None:
        from intents.agreement import agreement

        readers = agreement(heldout.examples, second, report.primaries, report.predicted)
    if args.json:
        doc = report.as_dict()
        doc["file"] = str(path)
        if args.errors:
            doc["errors"] = report.errors
        if comparison is not None:
            doc["baseline"] = comparison
        if readers is not None:
            doc["readers"] = readers.as_dict()
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0
    print(f"file              {path}")
    print(format_report(report, show_errors=args.errors))
    styles = format_styles(report)
    if styles:
        print("\n" + styles)
    if comparison is not None:
        print("\n" + _format_baseline(comparison))
    if readers is not None:
        from intents.agreement import format_agreement

        print("\n" + format_agreement(readers))
    return 0


def _read_labels(path: Path) -> list[Any]:
    from intents.data import load_heldout

    if not path.exists():
        raise UsageError(f"no such file: {path}")
    return load_heldout(path).examples


def _baseline(report: Any, examples: list[Any], data: Path) -> dict[str, Any]:
    import numpy as np

    from intents import baseline
    from intents.data import load_training

    train = load_training(data / "train")
    _announce(f"training the baseline on {len(train)} examples")
    theirs = baseline.baseline(train, [e.text for e in examples])
    ours = baseline.Outcome(report.primaries, report.predicted)
    out: dict[str, Any] = {}
    for name, metric in (("primary_accuracy", baseline.accuracy), ("macro_f1", baseline.macro_f1)):
        everything = np.arange(len(examples))
        diff, lo, hi = baseline.difference(ours, theirs, examples, metric)
        out[name] = {
            "smsbot": round(metric(ours, examples, everything), 4),
            "baseline": round(metric(theirs, examples, everything), 4),
            "difference": round(diff, 4),
            "interval95": [round(lo, 4), round(hi, 4)],
        }
    return out


def _format_baseline(comparison: dict[str, Any]) -> str:
    lines = [
        "baseline: TF-IDF char 1-3 + logistic regression (scikit-learn), same training data",
        f"{'':<18}{'smsbot':>8}{'baseline':>10}{'difference':>12}  95% interval (paired bootstrap)",
    ]
    for name, row in comparison.items():
        lo, hi = row["interval95"]
        lines.append(
            f"{name.replace('_', ' '):<18}{row['smsbot']:>8.4f}{row['baseline']:>10.4f}"
            f"{row['difference']:>+12.4f}  [{lo:+.4f}, {hi:+.4f}]"
        )
    return "\n".join(lines)


def _training_report(data: Path, *, rules_report: bool) -> int:
    from intents import tuning
    from intents.nlu import featurizer, make_tokenizer, training_set
    from intents.rules import load_rules
    from intents.rulestats import format_rules, rule_figures

    rules = load_rules(data / "rules.yaml")
    tokenizer = make_tokenizer(data / "userdict.txt")
    texts, targets = training_set(data, rules)
    _announce(f"cross-validating on {len(texts)} examples (5 folds, 10-20 s)")
    _, tuned = tuning.train(texts, targets, featurizer(tokenizer, rules), rules)
    if rules_report:
        print(format_rules(rule_figures(texts, targets, rules, tuned), tuned.examples))
    else:
        print(tuning.format_tuned(tuned))
    return 0


def _check(args: argparse.Namespace) -> int:
    from intents.data import check, load_training

    problems = check(args.data)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    examples = len(load_training(args.data / "train"))
    print(
        f"ok: {examples} training examples, rules and evaluation sets valid, "
        "no evaluation sentence in training data or rules"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    import time

    from intents.data import check
    from intents.nlu import default_cache_dir

    problems = check(args.data)
    if problems:
        # Training goes on (an operator may be mid-edit), but a model trained on data that
        # fails its check (a leaked evaluation sentence, a conflicting label) must not pass
        # unnoticed.
        for p in problems:
            print(f"warning: {p}", file=sys.stderr)
        print(f"warning: {len(problems)} problem(s) in the data (smsbot intents check)",
              file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    nlu = _load(args, retrain=args.force)
    took = time.perf_counter() - started
    if nlu.trained is None:
        print(f"model loaded from the cache in {took:.1f}s ({default_cache_dir()})")
    else:
        examples, seconds = nlu.trained
        print(
            f"model trained in {seconds:.1f}s on {examples} examples (5-fold cross-validation "
            f"and the final fit; {took:.1f}s with loading), cached in {default_cache_dir()}"
        )
    return 0

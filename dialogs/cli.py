"""``smsbot flows validate|test|graph`` and ``smsbot simulate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import ConfigError, UsageError
from dialogs.registry import DEFAULT_FLOWS, DEFAULT_TESTS, check_flow

if TYPE_CHECKING:
    from dialogs.convtest import Reviewer
    from dialogs.engine import CompiledFlow


# The operator's files, as the service runs with them: (flows directory, rule-pack file).
Operator = Callable[[], tuple[Path, Path | None]]


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    reviewer: Callable[[Path | None], Reviewer] | None = None,
    operator: Operator | None = None,
) -> None:
    """``reviewer`` builds the send-time gate's reviewer (from a rule-pack file) for `flows
    test` and `simulate`; ``operator`` names the operator's flows directory and rule-pack file
    (SMSBOT_FLOWS_DIR, SMSBOT_COMPLIANCE_FILE), so that no command silently reads the
    repository's own copies. The application passes both in: this library needs nothing of
    ``bot``."""
    flows = sub.add_parser("flows", help="check, test and draw dialog flows")
    fsub = flows.add_subparsers(dest="flows_command", required=True, metavar="COMMAND")

    p = fsub.add_parser("validate", help="check flow files (schema, safety rules, templates)")
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="flow files or directories (default: the service's, SMSBOT_FLOWS_DIR)",
    )
    p.add_argument(
        "--previous",
        type=Path,
        metavar="FILE",
        help="the running version: states it has must exist or be migrated",
    )
    p.add_argument(
        "--compliance",
        type=Path,
        metavar="FILE",
        help="rule packs whose content rules every template must pass, as at send time "
        "(default: the service's, SMSBOT_COMPLIANCE_FILE)",
    )
    p.set_defaults(handler=cmd_validate, operator=operator)

    p = fsub.add_parser("test", help="run YAML conversation tests")
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help=f"test files or directories (default: {DEFAULT_TESTS})",
    )
    p.add_argument(
        "--flows",
        type=Path,
        metavar="DIR",
        help="where flows named in tests are looked up (default: the service's, "
        "SMSBOT_FLOWS_DIR; the rule packs are SMSBOT_COMPLIANCE_FILE's)",
    )
    p.set_defaults(handler=cmd_test, reviewer=reviewer, operator=operator)

    p = fsub.add_parser("graph", help="draw a flow as .svg, .png or .dot")
    p.add_argument("flow", metavar="FLOW", help="a flow name or a flow file")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    p.set_defaults(handler=cmd_graph, operator=operator)

    p = sub.add_parser("simulate", help="play the borrower against a flow in the terminal")
    p.add_argument(
        "--flow",
        default="collections",
        metavar="NAME",
        help="a flow name or a flow file (default: collections)",
    )
    p.add_argument(
        "--start",
        metavar="ISO-TIME",
        help="simulated start time (default: 2026-12-02T10:00:00+08:00)",
    )
    p.set_defaults(handler=cmd_simulate, reviewer=reviewer, operator=operator)


def _operator(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(flows directory, rule-pack file) the service would run with; without the
    application's answer, the repository's flows and the shipped rule packs."""
    found: Operator | None = getattr(args, "operator", None)
    return found() if found is not None else (DEFAULT_FLOWS, None)


def _flow_files(paths: list[Path], default: Path) -> list[Path]:
    files: list[Path] = []
    for p in paths or [default]:
        if p.is_dir():
            files += sorted(p.glob("*.yaml"))
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(f"no such file or directory: {p}")
    if not files:
        raise UsageError("no flow files (*.yaml) found")
    return files


def cmd_validate(args: argparse.Namespace) -> int:
    from dialogs.template_checks import approvals
    from policy.rulebook import ContentPolicy, default_policy

    flows_dir, rules = _operator(args)
    rules = args.compliance or rules
    policy = ContentPolicy.load(rules) if rules else default_policy()
    previous = None
    if args.previous is not None:
        previous, problems = check_flow(args.previous, policy=policy)
        if previous is None:
            raise ConfigError(problems)
    failed = 0
    for path in _flow_files(args.paths, flows_dir):
        flow, problems = check_flow(path, previous, policy)
        for problem in problems:
            print(problem)
        if problems:
            failed += 1
            print(f"FAIL {path}: {len(problems)} problem(s)")
        elif flow is not None:
            print(
                f"ok   {path}: flow {flow.name} version {flow.version}, "
                f"{len(flow.spec.states)} states, {len(flow.templates)} templates"
            )
        # What each compliance approval covers, so a reviewer sees what was signed off.
        for line in approvals(flow, policy) if flow is not None else []:
            print(f"     {line}")
    return 1 if failed else 0


def cmd_test(args: argparse.Namespace) -> int:
    from dialogs.convtest import FlowSource, Runner, run_paths

    paths = args.paths or [DEFAULT_TESTS]
    for p in paths:
        if not p.exists():
            raise UsageError(f"no such file or directory: {p}")
    flows_dir, rules = _operator(args)
    flows_dir = args.flows or flows_dir
    if not flows_dir.is_dir():
        raise UsageError(f"--flows: no such directory: {flows_dir}")
    print(f"flows from {flows_dir}; rule packs from {rules or 'the shipped file'}", file=sys.stderr)
    runner = Runner(FlowSource(flows_dir), gate=args.reviewer(rules) if args.reviewer else None)
    passed, failed, problems = run_paths(paths, runner)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"{passed} passed, {failed} failed"
        + (f", {len(problems)} file problem(s)" if problems else "")
    )
    return 1 if failed or problems or not passed else 0


def _compiled(ref: str, args: argparse.Namespace) -> CompiledFlow:
    from dialogs.convtest import FlowSource

    return FlowSource(_operator(args)[0]).get(ref, Path.cwd())


def cmd_graph(args: argparse.Namespace) -> int:
    from dialogs.graph import write_graph

    write_graph(_compiled(args.flow, args).flow, args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from dialogs.simulate import Simulator, parse_start

    rules = _operator(args)[1]
    sim = Simulator(
        _compiled(args.flow, args),
        start=parse_start(args.start),
        gate=args.reviewer(rules) if args.reviewer else None,
    )
    return sim.run(sys.stdin, sys.stdout)

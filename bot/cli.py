"""The ``smsbot`` command. Each component registers its own sub-commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import ConfigError, SmsbotError, UsageError

if TYPE_CHECKING:
    from dialogs.convtest import Reviewer

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Imported here so that `smsbot --help` stays cheap and each area owns its commands.
    from bot import serve
    from bot.campaigns import cli as campaigns_cli
    from bot.compliance import cli as compliance_cli
    from bot.console import cli as console_cli
    from bot.reports import cli as reports_cli
    from bot.retention import cli as retention_cli
    from dialogs import cli as dialogs_cli
    from intents import cli as intents_cli

    serve.register(sub)
    intents_cli.register(sub)
    dialogs_cli.register(sub, reviewer=_gate_reviewer, operator=_operator_files)
    compliance_cli.register(sub)
    console_cli.register(sub)
    campaigns_cli.register(sub)
    reports_cli.register(sub)
    retention_cli.register(sub)
    return parser


def _gate_reviewer(rules: Path | None) -> Reviewer:
    """The compliance gate for `flows test` and `simulate` (loaded only when they run)."""
    from bot.compliance.sim import GateReviewer

    return GateReviewer.load(path=rules)


def _operator_files() -> tuple[Path, Path | None]:
    """The flows directory and rule-pack file the service would run with: an operator's
    command never silently reads the repository's own copies instead."""
    from bot.settings import load_settings

    settings = load_settings()
    return settings.flows_dir, settings.compliance_file


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"smsbot: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except SmsbotError as exc:
        print(f"smsbot: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `smsbot campaign status N | head`: the reader has what it wanted. Python would
        # print a traceback, and another on exit when it flushes stdout: point it elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

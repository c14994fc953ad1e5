"""``smsbot compliance check | explain | report | export``."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from common.errors import UsageError
from policy.findings import blocking as stops


def register(sub: Any) -> None:
    comp = sub.add_parser("compliance", help="the compliance gate: check texts, explain, report")
    csub = comp.add_subparsers(dest="compliance_command", required=True, metavar="COMMAND")

    ck = csub.add_parser("check", help="may this text be sent? (exit 0 yes, 1 blocked, 2 usage)")
    ck.add_argument("text", nargs="?", help="the rendered SMS, 【signature】 included")
    ck.add_argument("--template", help="check a flow template, rendered with sample values")
    ck.add_argument("--flow", default="collections", help="flow of --template")
    ck.add_argument(
        "--flows",
        type=Path,
        metavar="DIR",
        help="flows directory of --template (default: the service's, SMSBOT_FLOWS_DIR)",
    )
    ck.add_argument("--pack", help="rule pack (default: the file's default_pack)")
    ck.add_argument("--approved", action="store_true", help="treat the text as approved wording")
    ck.add_argument("--first-contact", action="store_true", help="check first-contact disclosures")
    ck.add_argument(
        "--no-debt-content",
        action="store_true",
        help="a text without debt content (an opt-out confirmation): required elements are waived",
    )
    ck.set_defaults(handler=_check)

    ex = csub.add_parser("explain", help="holds, opt-out, caps used and next allowed send time")
    ex.add_argument("account")
    ex.set_defaults(handler=_explain)

    rp = csub.add_parser("report", help="gate decisions per rule over a period")
    rp.add_argument("--from", dest="start", required=True, help="ISO date or time")
    rp.add_argument("--to", dest="end", required=True, help="ISO date or time (exclusive)")
    rp.add_argument("--csv", type=Path, help="write every block to this CSV file")
    rp.set_defaults(handler=_report)

    exp = csub.add_parser("export", help="evidence: one account's full history")
    exp.add_argument("account")
    exp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    exp.add_argument("-o", "--output", type=Path, help="file (default: stdout)")
    exp.set_defaults(handler=_export)


# --- check -----------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from bot.compliance.gate import Gate
    from bot.settings import load_settings

    if (args.text is None) == (args.template is None):
        raise UsageError("give either TEXT or --template NAME")
    settings = load_settings()
    gate = Gate.load(settings.compliance_file)
    if args.pack and args.pack not in gate.packs.packs:
        raise UsageError(
            f"--pack: unknown pack {args.pack!r} (known: {', '.join(gate.packs.packs)})"
        )
    pack = gate.pack(args.pack)
    approved = args.approved
    if args.template:
        flows_dir = args.flows or settings.flows_dir
        if not flows_dir.is_dir():
            raise UsageError(f"--flows: no such directory: {flows_dir}")
        text, approved = _render_template(flows_dir, args.flow, args.template, gate)
        approved = approved or args.approved
    else:
        text = args.text
    findings = gate.lint(pack, text, approved=approved, first_contact=args.first_contact)
    # A text checked here is a collection SMS unless said otherwise: required elements apply.
    blocking = stops(findings, approved=approved, debt_content=not args.no_debt_content)
    print(f"text: {text}")
    print(f"pack: {pack.name}{'  (approved wording)' if approved else ''}")
    for f in findings:
        mark = "BLOCK" if f in blocking else f.severity
        shown = f"{f.quote} ({f.term})" if f.source and f.quote else f.term  # meaning rules
        print(f"  {mark:<13} {f.rule}  {f.category}: {shown}  — {f.why}")
    verdict = "blocked" if blocking else "may be sent (content)"
    print(f"verdict: {verdict}; rules: {', '.join(dict.fromkeys(f.rule for f in blocking)) or '-'}")
    return 1 if blocking else 0


def _render_template(flows_dir: Path, flow_name: str, name: str, gate: Any) -> tuple[str, bool]:
    from dialogs.registry import Registry
    from dialogs.templates import render, sample_values

    registry = Registry.load(flows_dir, gate.policy)
    try:
        flow = registry.get(flow_name).flow
    except Exception as exc:
        raise UsageError(str(exc)) from exc
    if name not in flow.templates:
        known = ", ".join(sorted(flow.templates))
        raise UsageError(f"--template: no template {name!r} in flow {flow_name!r} (known: {known})")
    spec = flow.templates[name]
    settings = flow.spec.settings
    values = sample_values(settings, name="张*", last4="1234", amount_due="3200.00")
    if spec.compliance_approved is not None:
        a = spec.compliance_approved
        print(f"approved by {a.approved_by} on {a.approved_at} (soft-risk wording only)")
    return render(spec.text, values), spec.approved


# --- explain, report, export: read the service's store ------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    return asyncio.run(_with_store(lambda env: _explain_async(env, args.account)))


def _report(args: argparse.Namespace) -> int:
    start, end = _when(args.start, "--from"), _when(args.end, "--to")
    if end <= start:
        raise UsageError("--to must be after --from")
    return asyncio.run(_with_store(lambda env: _report_async(env, start, end, args.csv)))


def _export(args: argparse.Namespace) -> int:
    return asyncio.run(
        _with_store(lambda env: _export_async(env, args.account, args.format, args.output))
    )


def _when(value: str, flag: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: not an ISO date or time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Env:
    def __init__(self, store: Any, gate: Any, registry: Any, memory: bool) -> None:
        self.store, self.gate, self.registry, self.memory = store, gate, registry, memory


async def _with_store(run: Any) -> int:
    from bot.compliance.gate import Gate
    from bot.settings import load_settings
    from bot.storage.memory import MemoryStore
    from dialogs.registry import Registry

    settings = load_settings()
    if settings.redis_url:
        from bot.storage.redis import RedisStore

        store: Any = RedisStore.from_url(settings.redis_url)
    else:
        store = MemoryStore()
        print(
            "note: no SMSBOT_REDIS_URL: the in-memory store of a running service is not visible "
            "from here, so there is no data",
            file=sys.stderr,
        )
    try:
        gate = Gate.load(settings.compliance_file)
        env = _Env(
            store, gate, Registry.load(settings.flows_dir, gate.policy), settings.redis_url is None
        )
        return int(await run(env))
    finally:
        await store.close()


async def _explain_async(env: _Env, account_id: str) -> int:
    from bot.compliance.status import gate_context, status
    from dialogs import conversation as c

    account = await env.store.get_account(account_id)
    if account is None:
        raise UsageError(f"no account {account_id!r}")
    raw = await env.store.get_conversation(account_id)
    conv = c.Conversation.model_validate_json(raw) if raw else None
    now = datetime.now(UTC)
    ctx = await gate_context(env.store, env.gate, env.registry, account, conv, now)
    report = {"account": account_id, "state": conv.state if conv else None, **status(ctx, now)}
    deferred = await env.store.deferred(account_id)
    report["deferred"] = [
        {"message_id": m.id, "template": m.template, "not_before": m.not_before.isoformat()}
        for m in deferred
        if m.not_before
    ]
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


async def _report_async(env: _Env, start: datetime, end: datetime, csv_path: Path | None) -> int:
    verdicts: Counter[str] = Counter()
    per_rule: Counter[tuple[str, str]] = Counter()
    blocks: list[dict[str, Any]] = []
    for account_id in await env.store.account_ids():
        for e in await env.store.read_audit(account_id, 1_000_000):
            if e.kind != "gate" or not start <= e.at < end:
                continue
            verdict = e.detail.get("verdict", "?")
            verdicts[verdict] += 1
            for rule in e.detail.get("rules", []) or ["(none)"]:
                per_rule[(rule, verdict)] += 1
            if verdict == "block":
                blocks.append(
                    {
                        "at": e.at.isoformat(),
                        "account": account_id,
                        "template": e.detail.get("template"),
                        "message_id": e.detail.get("message_id"),
                        "rules": " ".join(e.detail.get("rules", [])),
                        "reasons": " | ".join(e.detail.get("reasons", [])),
                    }
                )
    print(f"gate decisions {start.isoformat()} .. {end.isoformat()}")
    for v in ("send", "defer", "block"):
        print(f"  {v:<6} {verdicts[v]}")
    print("per rule:")
    for (rule, verdict), n in sorted(per_rule.items()):
        print(f"  {rule:<24} {verdict:<6} {n}")
    if csv_path is not None:
        with csv_path.open("w", newline="", encoding="utf-8") as fh:
            _write_csv(fh, blocks, ["at", "account", "template", "message_id", "rules", "reasons"])
        print(f"wrote {len(blocks)} blocked message(s) to {csv_path}")
    return 0


async def _export_async(env: _Env, account_id: str, fmt: str, output: Path | None) -> int:
    if await env.store.get_account(account_id) is None:
        raise UsageError(f"no account {account_id!r}")
    rows = [
        {**e.detail, "at": e.at.isoformat(), "kind": e.kind}
        for e in await env.store.read_audit(account_id, 1_000_000)
    ]
    out: TextIO = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        if fmt == "jsonl":
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        else:
            columns = [
                "at",
                "kind",
                "template",
                "message_id",
                "text",
                "verdict",
                "rules",
                "reasons",
                "until",
                "carrier",
                "provider_id",
                "code",
                "intent",
                "error",
            ]
            _write_csv(out, rows, columns)
    finally:
        if output:
            out.close()
    return 0


def _write_csv(out: TextIO | io.StringIO, rows: list[dict[str, Any]], columns: list[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=[*columns, "detail"], extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = {k: _cell(v) for k, v in row.items()}
        flat["detail"] = json.dumps(
            {k: v for k, v in row.items() if k not in columns}, ensure_ascii=False, default=str
        )
        writer.writerow(flat)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " | ".join(str(v) for v in value)
    return "" if value is None else str(value)

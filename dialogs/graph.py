"""Flow diagrams: Graphviz DOT text, rendered to .svg/.png by the ``dot`` program.

States are boxes (agent-owned ones shaded, terminal ones doubled); each state's own rules are
edges from it; global rules are drawn once, from a single "any state" node.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from common.errors import SmsbotError, UsageError
from dialogs.flow import Flow
from dialogs.schema import Condition, Delay, Owner, Rule, format_duration

_ANY = "__any__"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def condition_text(cond: Condition | None) -> str:
    if cond is None:
        return ""
    parts: list[str] = []
    for key, value in cond.model_dump(exclude_defaults=True, mode="json").items():
        if key in ("counter_below", "counter_at_least"):
            op = "<" if key == "counter_below" else ">="
            parts += [f"{k}{op}{n}" for k, n in value.items()]
        elif isinstance(value, bool):
            parts.append(key if value else f"not {key}")
        else:
            shown = ",".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"{key}={shown}")
    return " & ".join(parts)


def delay_text(delay: Delay) -> str:
    if delay.after is not None:
        return format_duration(delay.after)
    at = f" {delay.at:%H:%M}" if delay.at else ""
    plus = f"+{delay.plus_days}d" if delay.plus_days else ""
    return f"{delay.on_date}{plus}{at}"


def rule_label(rule: Rule) -> str:
    lines = [rule.when + (" (always)" if rule.always else "")]
    if rule.if_ is not None and rule.conditional:
        lines.append(f"if {condition_text(rule.if_)}")
    lines += [f"{a.kind}: {a.send}" for a in rule.do if a.send]
    lines += [f"handoff: {a.handoff.reason}" for a in rule.do if a.handoff]
    return "\n".join(lines)


def to_dot(flow: Flow) -> str:
    spec = flow.spec
    out = [
        f"digraph {_q(flow.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Noto Sans CJK SC,sans-serif", fontsize=11];',
        '  edge [fontname="sans-serif", fontsize=9];',
        f"  label={_q(f'{flow.name} (version {flow.version})')}; labelloc=t;",
        "  __start [shape=point];",
        f"  __start -> {_q(spec.initial)};",
    ]
    for name, st in spec.states.items():
        attrs = []
        label = name
        if st.terminal:
            attrs.append("peripheries=2")
            label += "\n(terminal)"
        if st.owner == Owner.AGENT:
            attrs += ['style="rounded,filled"', "fillcolor=lightyellow"]
            label += "\n(agent)"
        if st.timeout is not None:
            label += f"\ntimeout {delay_text(st.timeout)}"
        out.append(f"  {_q(name)} [label={_q(label)}{''.join(', ' + a for a in attrs)}];")
    for name, st in spec.states.items():
        for rule in st.rules:
            out.append(_edge(name, rule))
    if spec.global_rules:
        # Rules that stay in place would be a knot of self-loops; list them in the node instead.
        staying = "\n".join(
            rule_label(r).replace("\n", "; ") for r in spec.global_rules if not r.to
        )
        label = "any non-terminal state" + (f"\n\nstays, on:\n{staying}" if staying else "")
        out += [
            "  subgraph cluster_global {",
            '    label="global rules"; style=dashed;',
            f"    {_ANY} [label={_q(label)}, shape=note];",
            "  }",
        ]
        out += [_edge(_ANY, rule) for rule in spec.global_rules if rule.to]
    out.append("}")
    return "\n".join(out) + "\n"


def _edge(source: str, rule: Rule) -> str:
    target = rule.to or source
    style = ", style=bold, color=firebrick" if rule.always else ""
    style += ", style=dashed" if rule.to is None else ""
    src = source if source == _ANY else _q(source)
    dst = _ANY if target == _ANY else _q(target)
    return f"  {src} -> {dst} [label={_q(rule_label(rule))}{style}];"


def write_graph(flow: Flow, output: Path) -> None:
    """Write ``output`` as .dot text, or render .svg/.png with Graphviz's ``dot``."""
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in ("dot", "svg", "png"):
        raise UsageError(f"cannot draw {output.name}: the file must end in .svg, .png or .dot")
    text = to_dot(flow)
    if fmt == "dot":
        output.write_text(text, encoding="utf-8")
        return
    exe = shutil.which("dot")
    if exe is None:
        raise SmsbotError(
            "drawing .svg or .png needs the Graphviz `dot` program, which is not installed "
            "(Debian: apt-get install graphviz); or write a .dot file instead"
        )
    done = subprocess.run(
        [exe, f"-T{fmt}", "-o", str(output)],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise SmsbotError(f"dot failed: {done.stderr.decode('utf-8', 'replace').strip()}")

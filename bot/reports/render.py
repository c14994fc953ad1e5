"""The dashboard's figures written out: CSV (one figure a row, for a spreadsheet's pivot) and
one standalone HTML file whose charts draw offline (Chart.js and the dashboard's script
inlined: nothing is fetched), for e-mailing to management."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from bot.reports.model import Dashboard

STATIC = Path(__file__).resolve().parent.parent / "console" / "static"
CHART_JS = STATIC / "vendor" / "chart.umd.min.js"  # Chart.js, vendored (vendor/VERSION)
DASHBOARD_JS = STATIC / "dashboard.js"
CSV_COLUMNS = ("section", "key", "metric", "value")
_FUNNEL = ("reminded", "delivered", "replied", "promised", "paid", "recovered")


def csv_rows(d: Dashboard) -> list[tuple[str, str, str, str]]:
    """Every figure as (section, key, metric, value)."""
    out: list[tuple[str, str, str, str]] = [
        ("range", "", "from", d.start.isoformat()),
        ("range", "", "to", d.end.isoformat()),
        ("range", "", "campaign", d.campaign_name or ""),
        ("range", "", "accounts", str(d.accounts)),
    ]
    out += [("funnel", "total", m, str(getattr(d.funnel, m))) for m in _FUNNEL]
    for day in d.days:
        out += [("day", day.day.isoformat(), m, str(getattr(day, m))) for m in _FUNNEL]
    for k in d.campaigns:
        out += [("campaign", k.name, m, str(getattr(k, m))) for m in _FUNNEL]
    for i in d.intents:
        out += [
            ("intent", i.day.isoformat(), name, str(n)) for name, n in sorted(i.intents.items())
        ]
    out += [("rates", "", k, "" if v is None else str(v)) for k, v in d.rates.model_dump().items()]
    out += [("handoffs", "reason", r, str(n)) for r, n in d.handoffs.by_reason.items()]
    out += [
        ("handoffs", "sla", what, str(n))
        for what, n in (
            ("met", d.handoffs.sla_met),
            ("missed", d.handoffs.sla_missed),
            ("pending", d.handoffs.sla_pending),
        )
    ]
    for t in d.templates:
        out += [
            ("template", t.template, m, str(getattr(t, m)))
            for m in ("sent", "replied", "paid", "reply_rate", "payment_rate")
        ]
    out += [("gate_blocked", rule, "messages", str(n)) for rule, n in d.gate.blocked.items()]
    out += [("gate_deferred", rule, "verdicts", str(n)) for rule, n in d.gate.deferred.items()]
    return out


def to_csv(d: Dashboard) -> str:
    """UTF-8 text with a BOM, so Excel reads the Chinese (as the campaign export)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(csv_rows(d))
    return "\ufeff" + buf.getvalue()


def data_json(d: Dashboard) -> str:
    """The figures for the page's script, safe inside a <script type="application/json">."""
    text = d.model_dump_json()
    # "</script>" or "<!--" in a name (a campaign's, a template's) must not end the element.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def environment() -> jinja2.Environment:
    from bot.console.pages import filters, template_globals

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(template_globals())
    env.filters.update(filters())
    return env


def standalone_html(d: Dashboard) -> str:
    """One HTML file: the figures' tables and charts, the scripts inlined."""
    context: dict[str, Any] = {
        "d": d,
        "data": data_json(d),
        "chart_js": _inline(CHART_JS.read_text(encoding="utf-8")),
        "dashboard_js": _inline(DASHBOARD_JS.read_text(encoding="utf-8")),
    }
    return environment().get_template("report.html").render(context)


def _inline(script: str) -> Markup:
    """A script's text inside <script>: the source map comment points at a file that is not
    there, and nothing may close the element early."""
    script = script.replace("//# sourceMappingURL=", "// (source map not included) ")
    return Markup(script.replace("</script", "<\\/script"))


def summary(d: Dashboard) -> str:
    """The headline figures as text (``smsbot report`` prints them)."""
    f, r, h = d.funnel, d.rates, d.handoffs
    return json.dumps(
        {
            "from": d.start.isoformat(),
            "to": d.end.isoformat(),
            "campaign": d.campaign_name,
            "accounts": d.accounts,
            "funnel": {m: str(getattr(f, m)) for m in _FUNNEL},
            "promise_kept_rate": r.promise_kept_rate,
            "opt_out_rate": r.opt_out_rate,
            "complaint_rate": r.complaint_rate,
            "handoffs": h.opened,
        },
        ensure_ascii=False,
    )

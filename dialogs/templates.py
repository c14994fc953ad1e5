"""Sandboxed template rendering and SMS length arithmetic.

Templates use ``{name}`` placeholders (``{{`` and ``}}`` for literal braces) parsed by our own
code: no ``str.format`` and no ``eval``, so a template can never reach attributes or run code,
and an unknown name is an error instead of an empty string in front of a borrower.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from common.errors import SmsbotError
from common.sms import Length, sms_length

__all__ = ["Length", "sms_length"]  # re-exported: flows count SMS with it

# --- variables -------------------------------------------------------------------------------

Source = Literal["settings", "account", "promise", "payment"]


@dataclass(frozen=True)
class Variable:
    source: Source
    # Longest value that may appear, used to prove a template fits its segment limit before
    # any borrower sees it. Settings are known exactly, so they have no sample.
    sample: str
    debt: bool  # reveals that there is a debt (or who owes it)
    description: str


VARIABLES: dict[str, Variable] = {
    "signature": Variable("settings", "", False, "the registered SMS signature, without 【】"),
    "creditor": Variable("settings", "", True, "the creditor's name as approved for SMS"),
    "hotline": Variable("settings", "", False, "official service hotline"),
    "app_link": Variable("settings", "", True, "official app / repayment link"),
    "name": Variable("account", "欧阳**", True, "borrower's masked name (张*)"),
    "last4": Variable("account", "8888", True, "last 4 digits of the loan number"),
    "amount_due": Variable("account", "9999999.99", True, "amount outstanding now, yuan"),
    "days_overdue": Variable("account", "9999", True, "days past the due date, today"),
    "due_date": Variable("account", "12月31日", True, "due date, M月D日"),
    "promised_date": Variable("promise", "12月31日", True, "date the borrower promised"),
    "promised_amount": Variable("promise", "9999999.99", True, "amount the borrower promised"),
    "paid_amount": Variable("payment", "9999999.99", True, "amount of the last payment"),
}

SETTINGS_VARIABLES = frozenset(k for k, v in VARIABLES.items() if v.source == "settings")


class _SettingsValues(Protocol):
    @property
    def signature(self) -> str: ...
    @property
    def creditor(self) -> str: ...
    @property
    def hotline(self) -> str: ...
    @property
    def app_link(self) -> str: ...


def sample_values(settings: _SettingsValues, **overrides: str) -> dict[str, str]:
    """Every variable with its longest sample value and the flow's settings: what a template
    looks like at its longest (segment checks) or, with overrides, in a typical case."""
    values = {k: v.sample for k, v in VARIABLES.items()}
    values.update(
        signature=settings.signature,
        creditor=settings.creditor,
        hotline=settings.hotline,
        app_link=settings.app_link,
    )
    values.update(overrides)
    return values


ALWAYS_AVAILABLE = frozenset(k for k, v in VARIABLES.items() if v.source in ("settings", "account"))


class RenderError(SmsbotError):
    """A template could not be rendered (unknown or unavailable variable, too long)."""


# --- parsing ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_VAR = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Parsed:
    parts: tuple[str | tuple[str], ...]  # literal text, or (variable name,)
    errors: tuple[str, ...]

    @property
    def variables(self) -> list[str]:
        seen: list[str] = []
        for p in self.parts:
            if isinstance(p, tuple) and p[0] not in seen:
                seen.append(p[0])
        return seen


@functools.lru_cache(maxsize=1024)  # a flow has a few dozen templates, rendered per send
def parse(text: str) -> Parsed:
    parts: list[str | tuple[str]] = []
    errors: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        parts.append(text[pos : m.start()])
        pos = m.end()
        tok = m.group(0)
        if tok in ("{{", "}}"):
            parts.append(tok[0])
        elif m.group(1) is not None and _VAR.match(m.group(1)):
            parts.append((m.group(1),))
        elif m.group(1) is not None:
            errors.append(f"{tok!r} is not a variable: names are lower-case letters, digits and _")
        else:
            errors.append(f"stray {tok!r}: write {tok * 2} for a literal brace")
    parts.append(text[pos:])
    return Parsed(tuple(p for p in parts if p != ""), tuple(errors))


def render(text: str, values: Mapping[str, str]) -> str:
    parsed = parse(text)
    if parsed.errors:
        raise RenderError("; ".join(parsed.errors))
    out: list[str] = []
    for p in parsed.parts:
        if isinstance(p, tuple):
            if p[0] not in values:
                raise RenderError(f"variable {{{p[0]}}} has no value here")
            out.append(values[p[0]])
        else:
            out.append(p)
    return "".join(out)


# --- texts that hold on one day only ---------------------------------------------------------

# Words that name a day relative to when the text is written: a text that says them is true on
# that day only (今天是您约定的还款日 sent the next morning is false).
_RELATIVE_DAY = re.compile(r"今天|今日|今晚|明天|明日|后天|昨天|本日|当天")
# Variables whose value changes with the day: re-rendered when the text leaves on another day.
_DAILY_VARIABLES = frozenset({"days_overdue"})

DayBound = Literal["any_day", "rerender", "that_day_only"]


def day_bound(text: str) -> DayBound:
    """How a template's text depends on the day it is sent (bot.outbound.dispatch asks when a
    deferred message finally leaves): ``that_day_only`` when its own words name a relative
    day (dropped on any other day), ``rerender`` when a variable's value changes daily (written
    again for the day it leaves), else ``any_day``."""
    parsed = parse(text)
    literal = "".join(p for p in parsed.parts if isinstance(p, str))
    if _RELATIVE_DAY.search(literal):
        return "that_day_only"
    if _DAILY_VARIABLES & set(parsed.variables):
        return "rerender"
    return "any_day"

"""What a template's variables say for a conversation on a day, and a rendered template."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Protocol

from dialogs import conversation as c
from dialogs.schema import Flag, Settings
from dialogs.templates import SETTINGS_VARIABLES, parse, render

_CENTS = Decimal("0.01")


def money(d: Decimal) -> str:
    return f"{d.quantize(_CENTS)}"


def cn_date(d: date) -> str:
    return f"{d.month}月{d.day}日"


class ConversationView(Protocol):
    """What conditions and templates read of a conversation: a stored one, or the engine's
    working copy mid-step (which answers from its pending changes without copying)."""

    @property
    def account(self) -> c.Account: ...
    @property
    def flags(self) -> tuple[Flag, ...]: ...
    @property
    def counters(self) -> dict[str, int]: ...
    @property
    def promise(self) -> c.Promise | None: ...
    @property
    def plan(self) -> tuple[c.Instalment, ...]: ...
    @property
    def paid_total(self) -> Decimal: ...
    @property
    def last_payment(self) -> Decimal | None: ...
    @property
    def outstanding(self) -> Decimal: ...


def template_values(
    settings: Settings,
    conv: ConversationView,
    today: date,
) -> dict[str, str]:
    """Every variable that has a value for this conversation today."""
    acc = conv.account
    values = {
        "signature": settings.signature,
        "creditor": settings.creditor,
        "hotline": settings.hotline,
        "app_link": settings.app_link,
        "name": acc.masked_name,
        "last4": acc.last4,
        "amount_due": money(conv.outstanding),
        "days_overdue": str(max((today - acc.due_date).days, 0)),
        "due_date": cn_date(acc.due_date),
    }
    if conv.promise is not None and conv.promise.date is not None:
        values["promised_date"] = cn_date(conv.promise.date)
    if conv.promise is not None and conv.promise.amount is not None:
        values["promised_amount"] = money(conv.promise.amount)
    if conv.last_payment is not None:
        values["paid_amount"] = money(conv.last_payment)
    return values


def rendered(template: str, values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The text, and the values a provider's approved template takes as parameters."""
    params = {
        k: values[k]
        for k in parse(template).variables
        if k in values and k not in SETTINGS_VARIABLES
    }
    return render(template, values), params

"""The facts the gate decides on, read from the store; and an account's compliance status."""

from __future__ import annotations

import contextlib
from datetime import datetime, time, timedelta
from typing import Any

from bot.compliance.gate import Gate, GateContext
from bot.compliance.window import Preferences, next_allowed
from bot.records import AccountRecord
from bot.storage.base import Store
from dialogs import conversation as c
from dialogs.registry import Registry


async def gate_context(
    store: Store,
    gate: Gate,
    registry: Registry,
    account: AccountRecord,
    conv: c.Conversation | None,
    now: datetime,
) -> GateContext:
    """Everything the gate needs about this recipient, as the store has it now."""
    pack = gate.pack(account.pack)
    facts = await store.gate_facts(account.id, account.phone, now - timedelta(days=7))
    prefs = Preferences.model_validate_json(facts.preferences) if facts.preferences else None
    owner = None
    if conv is not None:
        with contextlib.suppress(Exception):  # a state a newer flow version removed
            owner = registry.get(conv.flow).flow.spec.states[conv.state].owner
    return GateContext(
        pack=pack,
        zones=gate.zones(account.phone, account.tz, pack),
        opted_out=facts.opted_out,
        flags=frozenset(f.value for f in conv.flags) if conv else frozenset(),
        agent_owned=owner == "agent",
        history=facts.history,
        first_contact=not facts.contacted,
        preferences=prefs,
        invalid_number=facts.invalid_number,
    )


def status(ctx: GateContext, now: datetime) -> dict[str, Any]:
    """Holds, opt-out, caps used and the next time a proactive message could go out."""
    pack = ctx.pack
    zone = ctx.zones[0]
    today = now.astimezone(zone).date()
    used_today = [r for r in ctx.history if r.at.astimezone(zone).date() == today]
    holds = sorted(set(pack.holds.flags) & ctx.flags)
    if pack.holds.agent_owned and ctx.agent_owned:
        holds.append("agent")
    return {
        "pack": pack.name,
        "zones": [z.key for z in ctx.zones],
        "opted_out": ctx.opted_out,
        "wrong_number": "wrong_number" in ctx.flags,
        "holds": holds,
        "preferences": [q.label for q in ctx.preferences.no_contact] if ctx.preferences else [],
        "caps": {
            "proactive_today": sum(r.kind == "proactive" for r in used_today),
            "proactive_max_per_day": pack.frequency.proactive_max_per_day,
            "proactive_7d": sum(r.kind == "proactive" for r in ctx.history),
            "proactive_max_per_7d": pack.frequency.proactive_max_per_7d,
            "replies_today": sum(r.kind == "reply" for r in used_today),
            "reply_max_per_day": pack.frequency.reply_max_per_day,
        },
        # None: no proactive message may go at all (an opt-out, a wrong number, a hold).
        "next_allowed_send": (
            None
            if ctx.opted_out or "wrong_number" in ctx.flags or holds
            else next_proactive_send(ctx, now).isoformat()
        ),
    }


def next_proactive_send(ctx: GateContext, now: datetime) -> datetime:
    """The first time the window, the borrower's preferences and the proactive caps all allow
    (holds and opt-outs are reported beside it). The caps as the gate counts them: the day's
    cap lifts at the next local midnight, the 7-day cap when the oldest send that fills it is
    7 days old; the window then applies from there."""
    freq = ctx.pack.frequency
    zone = ctx.zones[0]
    local_day = now.astimezone(zone).date()
    next_day = datetime.combine(local_day + timedelta(days=1), time(0), zone)
    day_start = datetime.combine(local_day, time(0), zone)
    proactive = sorted(r.at for r in ctx.history if r.kind == "proactive")
    earliest = now
    if sum(day_start <= at < next_day for at in proactive) >= freq.proactive_max_per_day:
        earliest = max(earliest, next_day)
    week = [at for at in proactive if at > now - timedelta(days=7)]
    if len(week) >= freq.proactive_max_per_7d:
        earliest = max(earliest, week[-freq.proactive_max_per_7d] + timedelta(days=7))
    return next_allowed(earliest, ctx.zones, ctx.pack.window, ctx.preferences)

"""The gate every outbound SMS passes: send, defer until a computed time, or block.

``Gate.decide`` is pure: the caller (the pipeline, the CLI, the tests) gathers the facts into
a :class:`GateContext`; the decision names the rule ids it applied, and the caller audits it.
Order of the checks, and why:

1. content (hard-block lexicon, format, required elements, soft-risk outside approved wording):
   a bad text is never fixed by waiting, so it is blocked;
2. opt-out: after a stop only one confirmation without debt content may go;
3. third parties: nothing with debt content to a number marked wrong_number;
4. holds (dispute, hardship, cease, a person owns the case): no proactive collection content;
5. frequency caps and the identical-text gap: wait until the count allows;
6. the contact window and the borrower's stated quiet times: wait until it opens.
The one confirmation of an opt-out skips 5 and 6: it answers the borrower's own message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict

from bot.compliance.window import NoAllowedTime, Preferences, next_allowed, zones_for
from bot.records import Outbound, SendRecord
from policy.content import ContentChecker, Finding, blocking
from policy.pack import DEFAULT_FILE, Pack, PackFile
from policy.rulebook import ContentPolicy

_ZONE_CACHE = 10_000  # (phone, zone, pack) answers kept; cleared when full
_LINT_CACHE = 4096  # texts whose findings are kept (cleared whole when full)

Verdict = Literal["send", "defer", "block"]


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    until: AwareDatetime | None = None  # for defer: when to look again
    rules: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateContext:
    """What the gate needs to know about the recipient at the moment of sending."""

    pack: Pack
    zones: Sequence[ZoneInfo]
    opted_out: bool = False
    flags: frozenset[str] = frozenset()
    agent_owned: bool = False
    history: Sequence[SendRecord] = ()  # this phone's sends of the last 7 days
    first_contact: bool = False
    preferences: Preferences | None = None
    invalid_number: bool = False  # a provider said it cannot be reached (the send side's)


@dataclass
class _Verdicts:
    blocks: list[tuple[str, str]] = field(default_factory=list)
    defers: list[tuple[str, str, datetime]] = field(default_factory=list)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class Gate:
    def __init__(self, packs: PackFile, checkers: dict[str, ContentChecker]) -> None:
        self.packs = packs
        self._checkers = checkers
        # The same packs and checkers judge flow templates (`flows validate`, the registry).
        self.policy = ContentPolicy(packs, checkers)
        self._zones: dict[tuple[str, str | None, str], tuple[Pack, tuple[ZoneInfo, ...]]] = {}
        # What the content checker found per text: the same rendered texts come back (a
        # template, the same amount, the same masked name), and the check is the gate's
        # costliest part (~25 µs a text, bench/gate.py); findings are immutable.
        self._linted: dict[tuple[str, str, bool, bool], tuple[Finding, ...]] = {}

    @classmethod
    def load(cls, path: Path = DEFAULT_FILE) -> Gate:
        policy = ContentPolicy.load(path)
        return cls(policy.packs, policy.checkers)

    def adopt(self, other: Gate) -> None:
        """Takes ``other``'s packs and checkers (``bot.reload``): everything holding this gate
        decides by the new rules from its next decision on. No await in between: no decision
        sees half of each."""
        self.packs, self._checkers, self.policy = other.packs, other._checkers, other.policy
        self._zones, self._linted = {}, {}

    def pack(self, name: str | None) -> Pack:
        return self.packs.packs[name or self.packs.default_pack]

    def zones(self, phone: str, account_tz: str | None, pack: Pack) -> tuple[ZoneInfo, ...]:
        """:func:`zones_for`, worked out once per phone, zone and pack: it runs for every reply
        (dates such as 明天 are the borrower's) and every send."""
        key = (phone, account_tz, pack.name)
        known = self._zones.get(key)
        if known is None or known[0] is not pack:  # a reloaded pack may say otherwise
            if len(self._zones) >= _ZONE_CACHE:
                self._zones.clear()
            known = self._zones[key] = (pack, tuple(zones_for(phone, account_tz, pack)))
        return known[1]

    def checker(self, pack: Pack) -> ContentChecker:
        return self._checkers[pack.name]

    def lint(self, pack: Pack, text: str, *, approved: bool, first_contact: bool) -> list[Finding]:
        key = (pack.name, text, approved, first_contact)
        found = self._linted.get(key)
        if found is None:
            if len(self._linted) >= _LINT_CACHE:
                self._linted.clear()
            found = self._linted[key] = tuple(
                self.checker(pack).check(
                    text, approved_template=approved, first_contact=first_contact
                )
            )
        return list(found)

    def resubscribes(self, ctx: GateContext, text: str) -> Decision | None:
        """A re-subscription keyword (US START/UNSTOP) lifts the opt-out, unless a dispute or
        cease hold exists; None when the text is no such keyword or nothing is opted out."""
        words = {w.casefold() for w in ctx.pack.optout.resubscribe_keywords}
        if not ctx.opted_out or text.strip().casefold() not in words:
            return None
        p = ctx.pack.name.upper()
        held = sorted({"disputed", "ceased"} & ctx.flags)
        if held:
            return Decision(
                verdict="block",
                rules=(f"{p}-OPTOUT-03",),
                reasons=(f"re-subscription refused while {', '.join(held)}",),
            )
        return Decision(verdict="send", rules=(f"{p}-OPTOUT-03",))

    def decide(self, msg: Outbound, ctx: GateContext, now: datetime) -> Decision:
        pack = ctx.pack
        p = pack.name.upper()
        v = _Verdicts()
        findings = self.lint(pack, msg.text, approved=msg.approved, first_contact=ctx.first_contact)
        debt = msg.debt_content or any(f.severity == "debt_content" for f in findings)
        # One rule for what stops a text, shared with `flows validate` and `compliance check`.
        for f in blocking(findings, approved=msg.approved, debt_content=msg.debt_content):
            if f.severity == "soft":
                v.blocks.append((f.rule, f"{f.term}: allowed only in compliance-approved wording"))
            elif f.severity == "required":
                v.blocks.append((f.rule, f"missing {f.term} ({f.why})"))
            else:
                v.blocks.append((f.rule, f"{f.category}: {f.term} ({f.why})"))
        if ctx.opted_out or "opted_out" in ctx.flags:
            confirmations = sum(1 for r in ctx.history if r.kind == "confirmation")
            if msg.kind != "confirmation" or debt:
                v.blocks.append(
                    (f"{p}-OPTOUT-01", "the number opted out: nothing but one confirmation")
                )
            elif confirmations >= pack.optout.max_confirmations:
                v.blocks.append((f"{p}-OPTOUT-02", "the opt-out was already confirmed"))
        if "wrong_number" in ctx.flags and debt:
            v.blocks.append((f"{p}-3P-01", "debt content to a number that is not the borrower's"))
        held = set(pack.holds.flags) & ctx.flags
        if (
            msg.kind == "proactive"
            and debt
            and (held or (pack.holds.agent_owned and ctx.agent_owned))
        ):
            why = ", ".join(sorted(held)) or "a person owns the conversation"
            v.blocks.append((f"{p}-HOLD-01", f"collection is on hold ({why})"))
        if v.blocks:
            return Decision(
                verdict="block",
                rules=tuple(dict.fromkeys(r for r, _ in v.blocks)),
                reasons=tuple(reason for _, reason in v.blocks),
            )
        if msg.kind == "confirmation":
            # The one content-free answer to the borrower's own stop goes at once, whatever the
            # hour: it replies to a message they just sent (US-TIME-01's exception; TCPA asks
            # for it within five minutes), and caps do not count it.
            return Decision(verdict="send")
        self._caps(msg, ctx, now, v)
        same = f"{p}-FREQ-04"
        if msg.kind == "reply" and any(rule == same for rule, _, _ in v.defers):
            # An answer the borrower already has, word for word, from the last hours: held,
            # it would arrive unasked the next day (a dispute acknowledged twice, the amount
            # owed repeated). Identical content is not repeated (the pack's rule); it is
            # dropped. A proactive message waits for the gap instead.
            return Decision(
                verdict="block",
                rules=(same,),
                reasons=("the borrower received the same answer in the last hours",),
            )
        earliest = max([now, *(at for _, _, at in v.defers)])
        try:
            allowed = next_allowed(earliest, ctx.zones, pack.window, ctx.preferences)
        except NoAllowedTime as exc:
            # The borrower's quiet times leave no moment at all: a person must decide.
            return Decision(verdict="block", rules=(f"{p}-PREF-02",), reasons=(str(exc),))
        # A cap that waits to midnight is moved to the morning without blaming the window.
        outside_now = (
            not v.defers or next_allowed(now, ctx.zones, pack.window, ctx.preferences) > now
        )
        if allowed > earliest and outside_now:
            rule = f"{p}-TIME-01"
            if ctx.preferences and allowed != next_allowed(earliest, ctx.zones, pack.window, None):
                rule = f"{p}-PREF-01"
            v.defers.append(
                (rule, "outside the contact window or the borrower's quiet time", allowed)
            )
        if not v.defers and allowed <= earliest:
            return Decision(verdict="send")
        until = max(allowed, *(at for _, _, at in v.defers))
        return Decision(
            verdict="defer",
            until=until,
            rules=tuple(dict.fromkeys(r for r, _, _ in v.defers)),
            reasons=tuple(reason for _, reason, _ in v.defers),
        )

    def _caps(self, msg: Outbound, ctx: GateContext, now: datetime, v: _Verdicts) -> None:
        pack = ctx.pack
        p = pack.name.upper()
        freq = pack.frequency
        zone = ctx.zones[0] if ctx.zones else ZoneInfo(pack.timezone_default)
        local_day = now.astimezone(zone).date()
        day_start = datetime.combine(local_day, time(0), zone)
        next_day = datetime.combine(local_day + timedelta(days=1), time(0), zone)
        week_start = now - timedelta(days=7)
        digest = text_hash(msg.text)
        proactive_today = replies_today = 0
        proactive_week: list[datetime] = []
        last_same: datetime | None = None
        for r in ctx.history:  # one pass: this runs before every single send
            if r.message_id == msg.id:
                # Its own charge, left by a crash between putting it back to the gate and
                # taking the charge back (Store.move's rule: an extra charge, never a missing
                # one). A message is not another send to the borrower: counted, it would
                # hold itself back by the daily cap and the same-text gap.
                continue
            today = day_start <= r.at < next_day  # cheaper than converting each time
            if r.kind == "proactive":
                proactive_today += today
                if r.at > week_start:
                    proactive_week.append(r.at)
            elif r.kind == "reply":
                replies_today += today
            if r.text_hash == digest and (last_same is None or r.at > last_same):
                last_same = r.at
        if msg.kind == "proactive":
            if proactive_today >= freq.proactive_max_per_day:
                v.defers.append((f"{p}-FREQ-01", "daily cap on proactive messages", next_day))
            if len(proactive_week) >= freq.proactive_max_per_7d:
                oldest = sorted(proactive_week)[-freq.proactive_max_per_7d]
                v.defers.append(
                    (f"{p}-FREQ-02", "7-day cap on proactive messages", oldest + timedelta(days=7))
                )
        elif replies_today >= freq.reply_max_per_day:
            v.defers.append((f"{p}-FREQ-03", "daily cap on replies", next_day))
        gap = timedelta(hours=freq.identical_text_min_gap_h)
        if last_same is not None and last_same + gap > now:
            v.defers.append((f"{p}-FREQ-04", "the same text was sent recently", last_same + gap))

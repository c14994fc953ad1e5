"""Content lint of one rendered outbound SMS: pure, fast, driven by operator-edited lexicons.

:class:`ContentChecker` is built once per rule pack (``ContentChecker.load``) and then answers
``check(text, approved_template=..., first_contact=...)`` with every :class:`Finding`:

- ``block``: hard-block wording (threats, invented legal consequences, impersonation, insults,
  exposure to third parties, pressure to borrow or pay privately, marketing);
- ``soft``: legal wording allowed only in compliance-approved templates (not reported when
  ``approved_template`` is true: there it is allowed);
- ``format``: full ID or card numbers, 【 or 】 in the body, more segments than allowed;
- ``required``: a missing whitelisted signature, creditor name, official contact or required
  phrase (``required_every``, and ``required_first_contact`` on a first contact);
- ``debt_content``: words that reveal a debt. Not a problem in itself: the gate uses them to
  keep such texts from wrong numbers and opted-out borrowers.

Matching works on a *normalised* text (:func:`normalize_for_lint`): full-width → half-width,
traditional → simplified, lower case, and every space, punctuation mark, zero-width or symbol
character removed, so ``逮 捕``, ``逮.捕``, ``逮*捕`` and ``逮捕`` read the same. Homophones and
other spellings are listed in the lexicon files (``evasions``) and expanded into the term list
when the checker is built, so matching stays one pass over the text. Terms written only in
Latin letters (``sue``, ``irs``) must stand as whole words (an English ending such as -s, -ed,
-ing may follow), so ``issue`` and ``first`` do not hit.

Speed: everything is compiled in ``load``. A check is one normalisation, one Aho-Corasick pass
over the normalised text for all terms at once (``ahocorasick_rs``; a pure-Python index of the
terms' first two characters stands in when it is missing), one ``search`` per regex pattern and
a handful of substring tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Protocol

from common.sms import sms_length
from policy.context import ContextWords
from policy.findings import Finding, LexiconSeverity, Severity, blocking, required_findings
from policy.lexicon import Lexicon, LexiconCategory, load_lexicons, term_spellings
from policy.meaning import MeaningMatcher, MeaningRules, load_meaning_rules
from policy.pack import Pack
from policy.text import Normalizer, PyMatcher, TextMap, is_word_char, normalize_for_lint

try:
    import ahocorasick_rs
except ImportError:  # pragma: no cover - exercised through PyMatcher in the tests
    ahocorasick_rs = None  # type: ignore[assignment]

__all__ = [
    "ContentChecker",
    "Finding",
    "Lexicon",
    "LexiconCategory",
    "Severity",
    "blocking",
    "load_lexicons",
    "normalize_for_lint",
]

# --- matching --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class _Entry:
    """One term (all its spellings), pattern or exception phrase of one category."""

    severity: LexiconSeverity
    cat: int  # category index: exceptions and overlaps count within a category
    term: str  # as written in the file
    allow: bool  # an exception phrase, not a hit
    in_context: bool  # negation and reported speech exempt a hit (LexiconCategory.in_context)
    borrower_exempt: bool  # so does the borrower as the one acting (LexiconCategory)
    finding: Finding  # what it reports (a copy gets ``quote`` for block and soft hits)


_Hit = tuple[int, int, _Entry, bool]  # start, end (normalised text), entry, whole word needed


class _Matcher(Protocol):
    def find_matches_as_indexes(
        self, haystack: str, overlapping: bool = False
    ) -> list[tuple[int, int, int]]: ...


_NO_MEANING = MeaningRules({}, (), ContextWords((), (), (), (), (), (), ()), ())

# --- the checker -----------------------------------------------------------------------------

# Latin-script markets open a text with the sender's name ("ACME Recovery: …"); mainland
# providers put the registered signature in 【】. Pack files do not say which (yet).
_BARE_SIGNATURE_PACKS = frozenset({"us"})


class ContentChecker:
    """Lint for one pack. Build with :meth:`load`; :meth:`check` is pure and thread-safe."""

    def __init__(
        self,
        pack: Pack,
        lexicon: Lexicon,
        meaning: MeaningRules | None = None,
        *,
        use_rust: bool = True,
    ) -> None:
        self.pack = pack
        self._normalize = Normalizer()
        norm = self._normalize
        content = pack.content
        self._prefix = p = pack.name.upper()
        self._bare_signature = pack.name.lower() in _BARE_SIGNATURE_PACKS

        by_canonical: dict[str, list[str]] = {}
        for variant, canonical in lexicon.evasions.items():
            by_canonical.setdefault(canonical, []).append(variant)
        spelling_ids: dict[str, int] = {}
        spellings: list[str] = []
        entries: list[list[tuple[_Entry, bool]]] = []
        self._patterns: list[tuple[re.Pattern[str], _Entry, bool]] = []

        def finding(spec: LexiconCategory, term: str) -> Finding:
            return Finding(
                rule=spec.id,
                category=spec.category,
                severity=spec.severity,
                term=term,
                why=spec.why,
            )

        def add(spec: LexiconCategory, cat: int, term: str, *, allow: bool) -> None:
            entry = _Entry(
                spec.severity,
                cat,
                term,
                allow,
                spec.in_context,
                spec.borrower_exempt,
                finding(spec, term),
            )
            for spelled in term_spellings(norm(term), by_canonical):
                if not spelled:  # a pack value of punctuation only; lexicon files reject it
                    continue
                if spelled not in spelling_ids:
                    spelling_ids[spelled] = len(spellings)
                    spellings.append(spelled)
                    entries.append([])
                word = all(is_word_char(ch) for ch in spelled)
                slot = entries[spelling_ids[spelled]]
                if not any(e.cat == cat and e.allow == allow for e, _ in slot):
                    slot.append((entry, word))

        # The creditor's name in the body (not the signature) tells a stranger who is owed.
        creditor = LexiconCategory(
            id=f"{p}-3P-01/creditor-name",
            category="creditor named in the body",
            severity="debt_content",
            why="naming the lender to someone else reveals the loan (CN-3P-01 / FDCPA 1692c(b))",
            terms=list(content.creditor_names),
        )
        for cat, spec in enumerate([*lexicon.categories, creditor]):
            for term in spec.terms:
                add(spec, cat, term, allow=False)
            for term in spec.allow:
                add(spec, cat, term, allow=True)
            for pattern in spec.patterns:
                entry = _Entry(
                    spec.severity,
                    cat,
                    pattern,
                    False,
                    spec.in_context,
                    spec.borrower_exempt,
                    finding(spec, pattern),
                )
                # With exceptions in the category every match counts, else the first suffices.
                self._patterns.append((re.compile(pattern), entry, bool(spec.allow)))
        self._entries = [tuple(slot) for slot in entries]
        # Spellings whose hits need no weighing (debt words, no exceptions, not Latin words).
        self._plain: list[tuple[_Entry, ...] | None] = [
            tuple(e for e, _ in slot)
            if all(e.severity == "debt_content" and not e.allow and not w for e, w in slot)
            else None
            for slot in self._entries
        ]
        self.spelling_count = len(spellings)
        self.meaning = MeaningMatcher(meaning or _NO_MEANING, lexicon.evasions, use_rust=use_rust)
        self._matcher: _Matcher
        if use_rust and ahocorasick_rs is not None:
            self._matcher = ahocorasick_rs.AhoCorasick(spellings)
        else:
            self._matcher = PyMatcher(spellings)

        # Required elements, normalised once.
        self._signatures = sorted(content.signature_whitelist, key=len, reverse=True)
        self._signature_norm = {s: norm(s) for s in self._signatures}
        self._creditors = list(dict.fromkeys(norm(c) for c in content.creditor_names))
        self._contacts = list(dict.fromkeys(norm(c) for c in content.official_contacts))
        self._every = [(phrase, norm(phrase)) for phrase in content.required_every]
        self._first_contact = [(phrase, norm(phrase)) for phrase in content.required_first_contact]
        self._req = required_findings(pack, bare_signature=self._bare_signature)

    @classmethod
    def load(cls, pack: Pack, config_dir: Path, *, use_rust: bool = True) -> ContentChecker:
        """Read and validate the pack's lexicon files (``ConfigError`` names file and line)."""
        lexicon = load_lexicons([config_dir / ref for ref in pack.content.lexicons])
        meaning = load_meaning_rules([config_dir / ref for ref in pack.content.meaning])
        return cls(pack, lexicon, meaning, use_rust=use_rust)

    # --- public API ---------------------------------------------------------------------------

    def normalize(self, text: str) -> str:
        return self._normalize(text)

    def check(self, text: str, *, approved_template: bool, first_contact: bool) -> list[Finding]:
        """Every problem of ``text`` and its debt-content hits (see the module docstring)."""
        req = self._req
        signature, body, after_bracket = self._split_signature(text)
        compact = self._normalize(body)
        out = self._lint(body, compact, soft=not approved_template)
        out += self._meaning(body, compact, soft=not approved_template)
        # required elements (the signature counts as the creditor's name when it is one)
        if signature is None:
            found = _leading_bracket(text)
            if found is None:
                out.append(req["signature"])
            else:
                out.append(req["signature"].model_copy(update={"term": found}))
            full = compact
        else:
            full = self._signature_norm[signature] + compact
        for name in self._creditors:
            if name in full:
                break
        else:
            out.append(req["creditor"])
        for contact in self._contacts:
            if contact in full:
                break
        else:
            out.append(req["contact"])
        for phrase, n in self._every:
            if n not in full:
                out.append(req[f"every:{phrase}"])
        if first_contact:
            for phrase, n in self._first_contact:
                if n not in full:
                    out.append(req[f"first:{phrase}"])
        # format
        if "【" in after_bracket or "】" in after_bracket:
            out.append(req["brackets"])
        segments = sms_length(text).segments
        limit = self.pack.content.max_segments
        if segments > limit:
            out.append(req["segments"].model_copy(update={"term": f"{segments} SMS > {limit}"}))
        return out

    def debt_content(self, text: str) -> list[Finding]:
        """What in ``text`` reveals a debt (amounts, 逾期, 还款, the creditor's name …)."""
        _, body, _ = self._split_signature(text)
        return self._lint(body, self._normalize(body), soft=False, only_debt=True)

    # --- internals ----------------------------------------------------------------------------

    def _split_signature(self, text: str) -> tuple[str | None, str, str]:
        """(whitelisted signature or None, text to lint, text after a leading 【…】)."""
        s = text.lstrip()
        if s.startswith("【"):
            close = s.find("】", 1)
            if close < 0:
                return None, s, s[1:]
            after = s[close + 1 :]
            if s[1:close] in self._signature_norm:
                return s[1:close], after, after
            return None, s, after  # an unknown signature is linted too (【XX派出所】)
        if self._bare_signature:
            for sig in self._signatures:
                if s.startswith(sig) and (len(s) == len(sig) or not s[len(sig)].isalnum()):
                    return sig, s[len(sig) :], s
        return None, s, s

    def _lint(
        self, body: str, compact: str, *, soft: bool, only_debt: bool = False
    ) -> list[Finding]:
        matches = self._matcher.find_matches_as_indexes(compact, overlapping=True)
        # The usual case, a reminder: only plain debt words, nothing to weigh. One finding per
        # entry, in the order found; everything else goes through _weigh.
        plain = self._plain
        found: dict[_Entry, None] = {}
        for idx, _, _ in matches:
            entries = plain[idx]
            if entries is None:
                return self._weigh(matches, body, compact, soft=soft, only_debt=only_debt)
            for entry in entries:
                found[entry] = None
        for rx, entry, every in self._patterns:
            if rx.search(compact) is not None:
                if every or entry.severity != "debt_content":
                    return self._weigh(matches, body, compact, soft=soft, only_debt=only_debt)
                found[entry] = None
        return [entry.finding for entry in found]

    def _weigh(
        self,
        matches: list[tuple[int, int, int]],
        body: str,
        compact: str,
        *,
        soft: bool,
        only_debt: bool,
    ) -> list[Finding]:
        entries = self._entries
        hits: list[_Hit] = [
            (start, end, entry, word) for idx, start, end in matches for entry, word in entries[idx]
        ]
        for rx, entry, every in self._patterns:
            if every:
                hits.extend((m.start(), m.end(), entry, False) for m in rx.finditer(compact))
            else:
                m = rx.search(compact)
                if m is not None:
                    hits.append((m.start(), m.end(), entry, False))
        hits.sort(key=itemgetter(0))
        if only_debt:
            hits = [h for h in hits if h[2].severity == "debt_content"]
        elif not soft:
            hits = [h for h in hits if h[2].severity != "soft"]
        located = TextMap(body, compact)
        hits = [h for h in hits if not located.crosses_sentence(h[0], h[1])]
        if any(h[3] for h in hits):
            hits = [h for h in hits if not h[3] or located.whole_word(h[0], h[1])]
        hits = _without_exceptions(hits)
        if any(h[2].in_context for h in hits):
            context = self.meaning.context.read(body, compact, self._normalize)
            hits = [
                h
                for h in hits
                if not (
                    h[2].in_context and context.exempt(h[0], h[1], borrower=h[2].borrower_exempt)
                )
            ]
        out: dict[_Entry, Finding] = {}
        for start, end, entry, _ in hits:
            if entry in out:
                continue
            found = entry.finding
            if entry.severity in ("block", "soft"):
                quote = located.quote(start, end)
                if quote:
                    found = found.model_copy(update={"quote": quote})
            out[entry] = found
        return list(out.values())

    def _meaning(self, body: str, compact: str, *, soft: bool) -> list[Finding]:
        found = self.meaning.find(
            compact, lambda: self.meaning.context.read(body, compact, self._normalize), soft=soft
        )
        if not found:
            return []
        located = TextMap(body, compact)
        out = []
        for start, end, finding in found:
            quote = located.quote(start, end)
            out.append(finding.model_copy(update={"quote": quote}) if quote else finding)
        return out


def _leading_bracket(text: str) -> str | None:
    """The signature a text opens with, whitelisted or not (None when there is no 【)."""
    s = text.lstrip()
    if not s.startswith("【"):
        return None
    close = s.find("】", 1)
    return s[1:close] if close > 0 else None


def _without_exceptions(hits: list[_Hit]) -> list[_Hit]:
    """Drop exception phrases, every hit an exception of its category covers, and hits inside
    a longer hit of the same category (马上逮捕 and 逮捕 are one finding). ``hits`` are sorted
    by start."""
    allows = [h for h in hits if h[2].allow]
    kept = [h for h in hits if not h[2].allow] if allows else hits
    if allows:
        kept = [
            h
            for h in kept
            if not any(a[2].cat == h[2].cat and a[0] <= h[0] and h[1] <= a[1] for a in allows)
        ]
    # Longer first among equal starts; then a hit is inside an earlier one of its category
    # exactly when it ends before that one's end (or at it, starting later).
    kept.sort(key=lambda h: (h[0], h[0] - h[1]))
    reach: dict[int, tuple[int, int]] = {}  # category → (furthest end so far, its start)
    out: list[_Hit] = []
    for h in kept:
        cat = h[2].cat
        prev = reach.get(cat)
        if prev is not None and (h[1] < prev[0] or (h[1] == prev[0] and h[0] > prev[1])):
            continue
        if prev is None or h[1] > prev[0]:
            reach[cat] = (h[1], h[0])
        out.append(h)
    return out

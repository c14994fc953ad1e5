"""Where a hit stands in its text: clauses, negation, quotation and reported speech.

A word list says *what* a text mentions; whether the sender *does* it depends on the sentence
around it. ``我们将通知您的家人`` threatens; ``我们不会联系您的家人`` reassures; ``谨防“不还就通知
家人”之类的说法`` warns of someone else's threat. :class:`Context` answers, for a span of the
normalised text, the three questions the meaning rules (and lexicon categories marked
``in_context``) ask:

- *negated*: a negator stands earlier in the same clause (or between the parts of a match) and
  nothing ends its scope in between. ``不还就…``/``再不处理…`` are conditions, not negations
  (``conditions``), and ``不得不``, ``不排除``, ``不怕``, ``别逼`` … only look like negations
  (``not_negators``); ``但``, ``就``, ``否则`` … end a negation's reach (``scope_ends``).
- *reported*: the span is inside quotation marks and its sentence frames the quote as a warning
  word (``谨防``, ``警惕``, ``冒充`` …; not a bare ``之类``), or, unquoted, a reporter
  (``有人冒充``, ``不法分子`` …) opens the same clause before it. A quoted threat without such
  framing is still a threat, and so is one in a clause of its own after a warning.
- *borrower acts*: ``请您``/``您可以`` directly before the action: the borrower does it, not us.

Clauses end at 。！？；，：and line breaks (not at 、: lists stay in one clause); sentences at
。！？；and line breaks. When normalising a clause alone gives other characters than the whole
text did (very rare), the text is read as one unquoted clause: matching still works, only the
exemptions are lost, which errs on the side of blocking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_CLAUSE_END = frozenset("。！？!?；;，,：:\n\r…")
_SENTENCE_END = frozenset("。！？!?；;\n\r")
_OPEN = frozenset("“「『‘《")
_CLOSE = frozenset("”」』’》")
_STRAIGHT = frozenset('"')


@dataclass(frozen=True)
class ContextWords:
    """Normalised word lists of the ``negation`` and ``reported`` sections of a meaning file."""

    negators: tuple[str, ...]
    not_negators: tuple[str, ...]
    conditions: tuple[str, ...]
    scope_ends: tuple[str, ...]
    borrower_acts: tuple[str, ...]
    frames: tuple[str, ...]
    reporters: tuple[str, ...]


def alternation(words: Iterable[str]) -> str:
    """A regex matching any of ``words`` (longest first, so 不会 wins over 不)."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True) if w)


def _mask(text: str, rx: re.Pattern[str] | None) -> str:
    if rx is None:
        return text
    return rx.sub(lambda m: "\x00" * len(m.group()), text)


class ContextRules:
    """The compiled ``ContextWords``; :meth:`read` builds the :class:`Context` of one text."""

    def __init__(self, words: ContextWords) -> None:
        self.words = words

        def rx(items: Iterable[str]) -> re.Pattern[str] | None:
            alt = alternation(items)
            return re.compile(alt) if alt else None

        self._negator = rx(words.negators)
        self._not_negator = rx(words.not_negators)
        self._condition = rx(words.conditions)
        self._scope_end = rx(words.scope_ends)
        self._borrower = rx(words.borrower_acts)
        self._frame = rx(words.frames)
        self._reporter = rx(words.reporters)

    def read(self, body: str, compact: str, normalize: Callable[[str], str]) -> Context:
        return Context(self, body, compact, normalize)

    # --- the three questions, on one clause's normalised text --------------------------------

    def negated(self, clause: str, start: int, gaps: Iterable[tuple[int, int]] = ()) -> bool:
        """Is a span starting at ``start`` of ``clause`` (with ``gaps`` between its parts)
        negated?"""
        if self._negator is None:
            return False
        text = _mask(clause, self._not_negator)
        for m in self._negator.finditer(text):
            if m.start() >= start and not any(a <= m.start() and m.end() <= b for a, b in gaps):
                continue
            if m.start() < start and self._condition is not None:
                after = self._condition.match(text, m.end())
                if after is not None:
                    continue  # 不还就…: the negator belongs to a condition
            if m.start() < start:
                between = text[m.end() : start]
                if self._scope_end is not None and self._scope_end.search(between):
                    continue
            return True
        return False

    def borrower_acts(self, clause: str, start: int) -> bool:
        """``请您联系``, ``您可以通知``: a borrower-subject marker ending at most 2 characters
        before the action."""
        if self._borrower is None:
            return False
        head = clause[max(0, start - 8) : start]
        return any(len(head) - m.end() <= 2 for m in self._borrower.finditer(head))

    def framed(self, sentence_outside_quotes: str) -> bool:
        return self._frame is not None and self._frame.search(sentence_outside_quotes) is not None

    def reporter_before(self, clause_head: str) -> bool:
        return self._reporter is not None and self._reporter.search(clause_head) is not None


@dataclass(frozen=True)
class _Piece:
    start: int  # in the normalised text
    end: int
    clause: int
    sentence: int
    quoted: bool


class Context:
    """Clauses, sentences and quotations of one text, in normalised coordinates."""

    def __init__(
        self, rules: ContextRules, body: str, compact: str, normalize: Callable[[str], str]
    ) -> None:
        self.rules = rules
        self.compact = compact
        pieces = _pieces(body, normalize)
        if "".join(compact[p.start : p.end] for p in pieces) != compact or (
            pieces and pieces[-1].end != len(compact)
        ):
            pieces = [_Piece(0, len(compact), 0, 0, False)]
        self._pieces = pieces
        self.clauses: list[tuple[int, int]] = []  # (start, end) per clause id
        for p in pieces:
            if p.clause == len(self.clauses):
                self.clauses.append((p.start, p.end))
            else:
                self.clauses[p.clause] = (self.clauses[p.clause][0], p.end)

    def clause_at(self, k: int) -> tuple[int, int]:
        for a, b in self.clauses:
            if a <= k < b:
                return a, b
        return (0, len(self.compact))

    def _quoted(self, start: int, end: int) -> list[_Piece]:
        return [p for p in self._pieces if p.quoted and p.start < end and start < p.end]

    def exempt(
        self,
        start: int,
        end: int,
        gaps: Iterable[tuple[int, int]] = (),
        *,
        borrower: bool = False,
    ) -> bool:
        """Does the span ``[start, end)`` not say what it seems: negated, a framed quotation or
        reported speech, or (with ``borrower``) the borrower's own action?"""
        a, b = self.clause_at(start)
        clause = self.compact[a:b]
        rel = [(x - a, y - a) for x, y in gaps]
        if self.rules.negated(clause, start - a, rel):
            return True
        if borrower and self.rules.borrower_acts(clause, start - a):
            return True
        quoted = self._quoted(start, end)
        if quoted:
            sentence = quoted[0].sentence
            outside = "".join(
                self.compact[p.start : p.end]
                for p in self._pieces
                if p.sentence == sentence and not p.quoted
            )
            return self.rules.framed(outside)
        return self.rules.reporter_before(clause[: start - a])


def _pieces(body: str, normalize: Callable[[str], str]) -> list[_Piece]:
    out: list[_Piece] = []
    pos = clause = sentence = 0
    quoted = False
    buf: list[str] = []

    def flush() -> None:
        nonlocal pos
        if buf:
            n = normalize("".join(buf))
            if n:
                out.append(_Piece(pos, pos + len(n), clause, sentence, quoted))
                pos += len(n)
            buf.clear()

    prev = ""
    for ch in body:
        if ch in _OPEN or ch in _CLOSE or ch in _STRAIGHT:
            flush()
            quoted = (not quoted) if ch in _STRAIGHT else ch in _OPEN
        elif ch.isspace() and prev in _CLOSE:
            # A space after a closed quotation ends its sentence (“…” 请您注意…): what follows
            # is a new sentence and does not frame the quotation.
            flush()
            clause += 1
            sentence += 1
        elif ch in _CLAUSE_END:
            flush()
            clause += 1
            if ch in _SENTENCE_END:
                sentence += 1
                quoted = False  # an unclosed quote ends with its sentence
        else:
            buf.append(ch)
        prev = ch
    flush()
    # renumber clauses densely (empty clauses leave gaps)
    ids: dict[int, int] = {}
    return [
        _Piece(p.start, p.end, ids.setdefault(p.clause, len(ids)), p.sentence, p.quoted)
        for p in out
    ]

"""The text as the rules read it: normalised, mapped back to the original, cut into clauses.

Matching works on a *normalised* text (:func:`normalize_for_lint`): full-width → half-width,
traditional → simplified, lower case, and every space, punctuation mark, zero-width or symbol
character removed, so ``逮 捕``, ``逮.捕``, ``逮*捕`` and ``逮捕`` read the same.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Sequence

import opencc

# --- normalisation --------------------------------------------------------------------------

# Kept: letters and digits of every script, and currency signs (amounts: ¥100, ￥100, $100).
# Dropped: spaces, punctuation, symbols, emoji, zero-width and other format characters, "_".
_DROP = re.compile(r"[^\w¥$€£￥＄￡]|_")
_KEEP = re.compile(r"[^\W_]|[¥$€£￥＄￡]")
_KEEP_RUN = re.compile(r"(?:[^\W_]|[¥$€£￥＄￡])+")
_SENTENCE_END = re.compile(r"[。！？；!?;\n]")
# An English word may carry one of these endings after a term (sue → sued, arrest → arrests).
_SUFFIXES = frozenset({"s", "es", "d", "ed", "ing", "er", "ers"})


class Normalizer:
    """NFKC, traditional → simplified, lower case, separators removed. Built once: OpenCC
    loads its dictionaries when constructed."""

    def __init__(self) -> None:
        self._t2s = opencc.OpenCC("t2s")

    def __call__(self, text: str) -> str:
        t = _DROP.sub("", text)
        if not unicodedata.is_normalized("NFKC", t):  # CJK + ASCII usually is: skip the cost
            t = _DROP.sub("", unicodedata.normalize("NFKC", t))
        return str(self._t2s.convert(t)).lower()


@functools.cache
def default_normalizer() -> Normalizer:
    return Normalizer()


def normalize_for_lint(text: str) -> str:
    """The text as the lexicons see it: ``"馬上 逮.捕！"`` → ``"马上逮捕"``."""
    return default_normalizer()(text)


def is_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


class PyMatcher:
    """Pure-Python stand-in for ``ahocorasick_rs.AhoCorasick`` (same answers, ~10x slower):
    first character → (first two characters → spellings, longest first)."""

    def __init__(self, spellings: Sequence[str]) -> None:
        pairs: dict[str, dict[str, list[tuple[str, int]]]] = {}
        single: dict[str, list[int]] = {}
        for idx in sorted(range(len(spellings)), key=lambda k: -len(spellings[k])):
            s = spellings[idx]
            if len(s) == 1:
                single.setdefault(s, []).append(idx)
            else:
                pairs.setdefault(s[0], {}).setdefault(s[:2], []).append((s, idx))
        self._pairs = pairs
        self._single = single
        self._first = frozenset(pairs) | frozenset(single)

    def find_matches_as_indexes(
        self, haystack: str, overlapping: bool = False
    ) -> list[tuple[int, int, int]]:
        assert overlapping, "only overlapping matching is implemented"
        out: list[tuple[int, int, int]] = []
        text = haystack
        for ch in self._first.intersection(text):
            pairs = self._pairs.get(ch, {})
            ones = self._single.get(ch, [])
            i = text.find(ch)
            while i != -1:
                for s, idx in pairs.get(text[i : i + 2], ()):
                    if text.startswith(s, i):
                        out.append((idx, i, i + len(s)))
                out.extend((idx, i, i + 1) for idx in ones)
                i = text.find(ch, i + 1)
        return out


class TextMap:
    """Maps the normalised text back to the original, computed only when asked: word
    boundaries for Latin terms and quotes of block and soft hits. When normalising changed the
    number of characters the map would lie, so it is not used (no quote, no gaps)."""

    def __init__(self, original: str, compact: str) -> None:
        self.original = original
        self.compact = compact
        self._gaps: frozenset[int] | None = None
        self._positions: list[int] | None = None

    @property
    def gaps(self) -> frozenset[int]:
        """Normalised positions k with something removed between k-1 and k (a space, a dot)."""
        if self._gaps is None:
            runs = _KEEP_RUN.findall(self.original)
            ok = sum(map(len, runs)) == len(self.compact)
            self._gaps = frozenset(itertools.accumulate(map(len, runs))) if ok else frozenset()
        return self._gaps

    def quote(self, start: int, end: int) -> str:
        if self._positions is None:
            positions = [m.start() for m in _KEEP.finditer(self.original)]
            self._positions = positions if len(positions) == len(self.compact) else []
        if not self._positions or end <= start:
            return ""
        return self.original[self._positions[start] : self._positions[end - 1] + 1]

    def crosses_sentence(self, start: int, end: int) -> bool:
        """Does the original text of normalised characters start..end span the end of a
        sentence (。！？；, or a line break)? Such a "term" is two sentences' edges: 额度将被冻结。
        您的… is no 冻结你的. A half-width dot stays inside a term (逮.捕 is an evasion)."""
        if self._positions is None:
            self.quote(start, end)  # builds the position map
        if not self._positions or end - start < 2:
            return False
        a, b = self._positions[start], self._positions[end - 1]
        return _SENTENCE_END.search(self.original, a, b) is not None

    def boundary(self, k: int) -> bool:
        """Is there a word boundary between normalised characters k-1 and k?"""
        c = self.compact
        if k <= 0 or k >= len(c):
            return True
        return not (is_word_char(c[k - 1]) and is_word_char(c[k])) or k in self.gaps

    def whole_word(self, start: int, end: int) -> bool:
        if not self.boundary(start):
            return False
        k = end
        while not self.boundary(k) and k - end < 4:
            k += 1
        return k == end or (self.boundary(k) and self.compact[end:k] in _SUFFIXES)

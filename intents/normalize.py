"""Normalisation of borrowers' raw SMS text before anything reads it.

Order matters: width and script first (so every later pattern sees one spelling), then typos,
then the quoted reminder is cut out (so its amounts and dates are never read as the borrower's).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

import opencc

log = logging.getLogger(__name__)

# Analysing more than this gains nothing (an SMS reply is short) and bounds the cost of abuse.
MAX_ANALYSED_CHARS = 1000

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ufe0e\ufe0f]")
# Skin tones and emoji joiners carry no meaning for us; dropping them makes 👍🏻 equal 👍.
_EMOJI_MODIFIERS = re.compile(r"[\U0001f3fb-\U0001f3ff\u200d]")
_WS = re.compile(r"\s+")
_CJK = r"\u3400-\u9fff\uf900-\ufaff"
# Spaces between CJK characters are never meaningful in Chinese ("退 订" is 退订).
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
# Spaces between lone Latin letters are spacing tricks ("t d", "s t o p").
_SPACED_LETTERS = re.compile(r"\b[a-z](?:[\s.\-_*]+[a-z])+\b")
_REPEATED_PUNCT = re.compile(r"([!?.,~。，！？、…\-_=*#])\1+")
_PUNCT_VARIANTS = str.maketrans(
    {
        "，": ",",
        "。": ".",
        "！": "!",
        "？": "?",
        "：": ":",
        "；": ";",
        "、": ",",
        "～": "~",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "「": '"',
        "」": '"',
        "…": ".",
    }
)

# A quoted reminder starts at a 【signature】 (optionally after 回复/引用) ...
_QUOTE_START = re.compile(r"(?:(?:回复|引用|原文|转发)\s*[:：]?\s*)?【[^】]{1,20}】")
# ... and its sentences read like our reminders, not like a borrower.
_REMINDER_SENTENCE = re.compile(
    r"您|尊敬|先生|女士|请于|请及时|请尽快|以免|客服|热线|详询|退订回|回t退订|拒收请回|"
    r"已逾期|逾期\d+天|应还|账单|借款\d|征信|拨打|官方|www|http|还款日|到期日|最后还款|本期"
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;,\s])")

# A link is never the borrower's word: t.cn/AbC123 holds no 退订, and an opt-out link's
# "unsubscribe" is the advert's. Links are taken out of `compact` (the rules reading `text`
# guard their letters themselves).
_URL = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|(?<![\w@])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:cn|com|net|org|co|cc|io|me|ly|top|xyz|vip|shop)"
    r"(?:/\S*)?(?![a-z])"
)
# A function call is code, not a reply: stop(), timer.stop(); — the rules that read `compact`
# (punctuation gone) would see the word stop in it. Only calls with empty parentheses or ended
# by a semicolon, and none holding Chinese: STOP（别发了） is a person's.
_CODE_CALL = re.compile(
    r"(?<![a-z0-9_.])[a-z_][a-z0-9_.]*\(\s*\)\s*;?"
    r"|(?<![a-z0-9_.])[a-z_][a-z0-9_.]*\([^()\u3400-\u9fff]{0,40}\)\s*;"
)
# The opt-out line of a marketing text (退订回T, 回TD退订, 拒收请回R, reply STOP to opt out).
_OPT_OUT_LINE = re.compile(
    r"(?:退订|拒收|取消)\s*(?:请)?\s*回复?\s*(?:td|t|r|n|qxdy|0000|\d{1,2})(?![a-z0-9])"
    r"|回复?\s*(?:td|t|r|n|qxdy|0000|\d{1,2})\s*(?:即可)?\s*(?:退订|拒收|退|取消)"
    r"|(?:reply|text|txt|send)\s+(?:stop|td|t|unsubscribe|n)\s+to\s+(?:unsubscribe|opt[\s-]*out|"
    r"stop|end|cancel|\d+)|(?:to\s+)?(?:unsubscribe|opt[\s-]*out),?\s+reply\s+(?:stop|td|t)"
)
_EN_OPT_OUT_LINE = re.compile(
    r"(?:reply|text|txt|send)\s+(?:stop|td|t|unsubscribe|n)\s+to\s+(?:unsubscribe|opt[\s-]*out|"
    r"stop|end|cancel|\d+)|(?:to\s+)?(?:unsubscribe|opt[\s-]*out),?\s+reply\s+(?:stop|td|t)"
)
# What shows that a text is a pasted advert, not the borrower writing: a link or marketing
# words (a 【brand】 signature is found by strip_quoted_reminder).
_ADVERT = re.compile(
    r"大促|促销|优惠|折扣|[\d一二三四五六七八九]\.?\d?折|满\d+减|领券|券|秒杀|红包|抢购|特价|爆款|包邮|"
    r"低至|限时|活动|福利|积分|会员|点击|戳|详情|下载|新品|直播间|全场|狂欢|"
    # loan adverts and forwarded or mass-sent texts
    r"无抵押|秒下款|下款|秒批|放款快|(?<![a-z])(?:vx|v信)(?![a-z])|加v|加微|群发|转发自|转自|"
    r"(?<![a-z])(?:sale|discount|promo|deal|offer|shop|coupon|off)(?![a-z])"
)


_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Invisible characters that only hide words from the rules: format characters (bidi marks such
# as U+202E, zero-width joiners, soft hyphens, tag characters) and combining marks left over
# after NFKC (zalgo text, variation selectors: 退\u0301订 is 退订). Control characters other
# than tab and newline go too; OpenCC and the rules never need any of them.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Cc", "Co", "Cn"})
_KEPT_CONTROLS = frozenset("\t\n")


def without_invisibles(text: str) -> str:
    """``text`` without the characters of :data:`_INVISIBLE_CATEGORIES` (ASCII is untouched
    but for control characters, which the cheaper _CONTROL expression already removes)."""
    if text.isascii():
        return text
    return "".join(
        c
        for c in text
        if c.isascii()
        or c in _KEPT_CONTROLS
        or unicodedata.category(c) not in _INVISIBLE_CATEGORIES
    )


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a str may hold them; no encoder,
    OpenCC included, accepts them). A high and low surrogate in a row (UTF-16 decoded as
    UCS-2 upstream) are the one character they encode: 😀, not two U+FFFD."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@dataclass(frozen=True)
class Normalized:
    text: str  # what rules, the model and entity readers see
    compact: str  # text without spaces or punctuation, for keyword checks immune to spacing tricks
    stripped_quote: str | None  # the reminder text the borrower quoted back, if any


class Normalizer:
    """Turns raw SMS text into one canonical spelling. Built once; ``__call__`` is pure."""

    def __init__(self, typos: Mapping[str, str]) -> None:
        self._t2s = opencc.OpenCC("t2s")
        # Longest first, so that 以经还了 is fixed before a shorter overlapping key.
        self._typos = sorted(typos.items(), key=lambda kv: -len(kv[0]))
        pattern = "|".join(re.escape(k) for k, _ in self._typos)
        self._typo_re = re.compile(pattern) if pattern else None
        self._typo_map = dict(self._typos)

    def __call__(self, raw: str) -> Normalized:
        text = _CONTROL.sub("", without_surrogates(raw[: MAX_ANALYSED_CHARS * 2]))
        text = unicodedata.normalize("NFKC", text)  # full-width → half-width, among others
        text = without_invisibles(_EMOJI_MODIFIERS.sub("", text))
        text = self._simplified(text).lower().translate(_PUNCT_VARIANTS)
        # Before spaces are squeezed: a space is often all that ends a pasted reminder.
        text, quote = strip_quoted_reminder(text)
        text, quote = strip_advert_opt_out(text, quote)
        text = _WS.sub(" ", text).strip()
        if self._typo_re is not None:  # keys may hold one space: "hao de"
            text = self._typo_re.sub(lambda m: self._typo_map[m.group()], text)
        text = _SPACE_BETWEEN_CJK.sub("", text)
        text = _SPACED_LETTERS.sub(lambda m: re.sub(r"[\s.\-_*]+", "", m.group()), text)
        text = _REPEATED_PUNCT.sub(r"\1", text)
        text = text[:MAX_ANALYSED_CHARS]
        compact = re.sub(r"[\W_]+", "", _CODE_CALL.sub(" ", _URL.sub(" ", text)))
        return Normalized(text=text, compact=compact, stripped_quote=quote)

    def _simplified(self, text: str) -> str:
        """Traditional → simplified. OpenCC is C++ over UTF-8 and has raised on inputs no test
        foresaw (lone surrogates); a reply it cannot convert is read as written, not lost."""
        try:
            return str(self._t2s.convert(text))
        except Exception:  # any failure of the converter, by design
            log.warning("OpenCC could not convert a reply of %d characters", len(text))
            return text


def strip_quoted_reminder(text: str) -> tuple[str, str | None]:
    """Removes a reminder the borrower pasted back, keeping the borrower's own words."""
    m = _QUOTE_START.search(text)
    if m is None:
        return text, None
    before, rest = text[: m.start()], text[m.end() :]
    consumed = 0
    for piece in _SENTENCE_SPLIT.split(rest):
        if not piece.strip() or _REMINDER_SENTENCE.search(piece):
            consumed += len(piece)
            continue
        break
    quote = text[m.start() : m.end() + consumed]
    kept = (before + " " + rest[consumed:]).strip(" :,.")
    return kept.strip(), quote.strip()


def strip_advert_opt_out(text: str, quote: str | None) -> tuple[str, str | None]:
    """Removes the opt-out line of an advert the borrower pasted (【某某商城】…回T退订): it is
    the advertiser's, not a stop request. Only in an advert (a 【signature】, a link or
    marketing words): 回T退订 typed alone is the borrower's. The borrower's own words around
    it (别再发了【…】…回T退订) stay and are read as usual."""
    if not (quote or _URL.search(text) or _ADVERT.search(text)):
        # "Reply STOP to unsubscribe" is a sender's footer wherever it stands: no borrower
        # writes an instruction to themselves (回T退订 typed alone is the borrower's reply).
        if not _EN_OPT_OUT_LINE.search(text):
            return text, quote
        removed = [m.group() for m in _EN_OPT_OUT_LINE.finditer(text)]
        kept = _EN_OPT_OUT_LINE.sub(" ", text)
        return kept, " ".join(([quote] if quote else []) + removed)
    removed = [m.group() for m in _OPT_OUT_LINE.finditer(text)]
    if not removed:
        return text, quote
    kept = _OPT_OUT_LINE.sub(" ", text)
    return kept, " ".join(([quote] if quote else []) + removed)

"""How far a careful reader gets: an evaluation set labelled again by readers who saw only
DATA.md and the texts (never the authors' labels nor any model output).

The readers' agreement with the authors is the ceiling a set's labels allow: when readers
agree with the authors far more often than the model does, the model's errors are its own,
not ambiguity of the labels. Nothing is tuned on it (DATA.md); it measures the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from common.errors import UsageError
from intents import tuning
from intents.data import Example
from intents.model import Intent


@dataclass(frozen=True)
class Agreement:
    examples: int
    readers_primary: float  # readers' primary = authors' primary, share of examples
    readers_macro_f1: float  # readers' intents scored against the authors'
    model_primary: float
    model_vs_readers: float  # the model's primary = the readers' primary
    stops_authors: int
    stops_readers: int
    stops_both: int
    model_stop_recall_both: float  # of the opt-outs authors and readers both labelled

    def as_dict(self) -> dict[str, float | int]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _primary(e: Example) -> Intent:
    return Intent.STOP if Intent.STOP in e.intents else e.primary


def agreement(
    authors: Sequence[Example],
    readers: Sequence[Example],
    primaries: Sequence[Intent],
    model: Sequence[frozenset[Intent]],
) -> Agreement:
    """``primaries`` and ``model``: the NLU's primary and intents per example, in order."""
    if len(readers) != len(authors) or any(
        a.text != r.text for a, r in zip(authors, readers, strict=True)
    ):
        raise UsageError("the readers' file must hold the evaluated file's texts, in its order")
    n = len(authors)
    gold = [_primary(a) for a in authors]
    read = [_primary(r) for r in readers]
    stops_a = {i for i, a in enumerate(authors) if Intent.STOP in a.intents}
    stops_r = {i for i, r in enumerate(readers) if Intent.STOP in r.intents}
    both = stops_a & stops_r
    found = {i for i in both if Intent.STOP in model[i]}
    return Agreement(
        examples=n,
        readers_primary=sum(g == r for g, r in zip(gold, read, strict=True)) / max(n, 1),
        readers_macro_f1=tuning.macro_f1(
            (set(r.intents), set(a.intents)) for a, r in zip(authors, readers, strict=True)
        ),
        model_primary=sum(g == m for g, m in zip(gold, primaries, strict=True)) / max(n, 1),
        model_vs_readers=sum(r == m for r, m in zip(read, primaries, strict=True)) / max(n, 1),
        stops_authors=len(stops_a),
        stops_readers=len(stops_r),
        stops_both=len(both),
        model_stop_recall_both=len(found) / len(both) if both else 1.0,
    )


def format_agreement(a: Agreement) -> str:
    return "\n".join(
        [
            "readers: the same texts labelled again by readers who saw only DATA.md",
            f"readers vs authors   primary {a.readers_primary:.4f}  macro-F1 "
            f"{a.readers_macro_f1:.4f}",
            f"smsbot vs authors    primary {a.model_primary:.4f}",
            f"smsbot vs readers    primary {a.model_vs_readers:.4f}",
            f"opt-outs             authors {a.stops_authors}, readers {a.stops_readers}, both "
            f"{a.stops_both}; smsbot found {a.model_stop_recall_both:.3f} of those both labelled",
        ]
    )

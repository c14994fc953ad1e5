"""Chinese reply understanding: intents and promise entities.

Load once at start-up, then call synchronously::

    nlu = Understander.load()
    u = nlu.understand("明天还500", now=datetime.now(UTC), tz="Asia/Shanghai")
"""

from intents.model import (
    INTENT_NAMES,
    Entities,
    Explanation,
    Intent,
    IntentScore,
    Understanding,
)
from intents.nlu import Understander

__all__ = [
    "INTENT_NAMES",
    "Entities",
    "Explanation",
    "Intent",
    "IntentScore",
    "Understander",
    "Understanding",
]

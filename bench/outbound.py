"""probe"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inbound import free_port
from tests.outbound.fakecarrier import TWILIO_SID, FakeCarrier  # noqa: E402


class C(FakeCarrier):
    pass


print(free_port(), TWILIO_SID, C)

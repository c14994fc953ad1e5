"""Compliance gate benchmark: decisions per second on one core, with the full lexicon.

Run: ``.venv/bin/python bench/gate.py [--seconds N]``. Messages are the default flow's templates
rendered with realistic values plus borrower-style variants (some with prohibited words), each
decided against a context with a week of send history, as the service does before every send.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SH = ZoneInfo("Asia/Shanghai")
EXTRA = [
    "再不还款马上逮捕你",
    "我们会通知你所有联系人",
    "可以找朋友借钱来还",
    "请转到个人账户6222020200112233445",
    "逾期将依法上报征信",
]


def _messages() -> list[str]:
    from dialogs.registry import Registry
    from dialogs.templates import render, sample_values

    flow = Registry.load().get("collections").flow
    values = sample_values(flow.spec.settings, name="张*", last4="1234", amount_due="3200.00")
    texts = [render(t.text, values) for t in flow.templates.values()]
    rng = random.Random(7)
    texts += [rng.choice(texts)[:-1] + x + "。" for x in EXTRA for _ in range(3)]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from bot.compliance.gate import Gate, GateContext, text_hash
    from bot.records import Outbound, SendRecord

    gate = Gate.load()
    pack = gate.pack("cn")
    now = datetime(2026, 12, 2, 10, 0, tzinfo=SH)
    history = [
        SendRecord(
            at=now - timedelta(days=d, hours=h),
            account_id="A",
            message_id=f"{d}{h}",
            kind="proactive" if h == 0 else "reply",
            text_hash=text_hash(f"{d}{h}"),
        )
        for d in range(1, 7)
        for h in range(2)
    ]
    ctx = GateContext(pack=pack, zones=[SH], history=history)
    msgs = [
        Outbound(
            account_id="A",
            phone="+8613800000001",
            text=t,
            template="t",
            created_at=now,
            kind="reply",
            approved=True,
        )
        for t in _messages()
    ]
    decide = gate.decide
    verdicts: dict[str, int] = {}
    for m in msgs:
        v = decide(m, ctx, now).verdict
        verdicts[v] = verdicts.get(v, 0) + 1
    done = 0
    started = time.perf_counter()
    deadline = started + args.seconds
    while time.perf_counter() < deadline:
        for m in msgs:
            decide(m, ctx, now)
        done += len(msgs)
    elapsed = time.perf_counter() - started
    avg_len = sum(len(m.text) for m in msgs) / len(msgs)
    print(
        f"messages: {len(msgs)} rendered Chinese SMS (avg {avg_len:.0f} chars), verdicts {verdicts}"
    )
    print(f"decisions: {done / elapsed:,.0f}/s on one core ({elapsed / done * 1e6:.1f} µs each)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

"""NLU benchmark: single-message throughput on one core, p50/p99 latency, cold start, peak RSS.

Run: ``make bench`` or ``.venv/bin/python bench/classify.py [--seconds N]``.
Messages are the held-out set's texts (realistic length and mix). Three passes are measured:
*uncached* (every text analysed), *analysis reused* (a text seen before, on another day: its
analysis is reused and the answer built, dates read against the new day) and *answer kept* (a
text seen before on the same day in the borrower's zone: replies repeat, 好的, TD, 明天还).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from intents import Understander


def _cold_start() -> float:
    """Process start to first result, in a fresh interpreter (model cache warm)."""
    code = (
        "from datetime import datetime, UTC\n"
        "from intents import Understander\n"
        "Understander.load().understand('明天还500', now=datetime.now(UTC))\n"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return time.perf_counter() - started


def _percentile(values: array[float], q: float) -> float:
    import numpy as np

    # numpy reads the array in place: sorting millions of Python floats would double the RSS.
    return float(np.quantile(np.frombuffer(values, dtype=np.float64), q))


def _measure(
    nlu: Understander, texts: list[str], seconds: float, forget: Callable[[], None] | None
) -> tuple[float, array[float]]:
    from intents.data import load_heldout

    now = load_heldout().now
    understand = nlu.understand
    latencies = array("d")  # a million floats in a list would be the biggest thing measured
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for text in texts:
            if forget is not None:
                forget()
            t0 = time.perf_counter()
            understand(text, now=now, tz="Asia/Shanghai")
            latencies.append(time.perf_counter() - t0)
            done += 1
    return done / (time.perf_counter() - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per pass")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    from intents import Understander
    from intents.data import load_heldout

    Understander.load()  # make sure the model cache is warm before timing cold start
    cold = min(_cold_start() for _ in range(3))
    nlu = Understander.load()
    texts = [e.text for e in load_heldout().examples]
    loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    print(f"messages: {len(texts)} distinct held-out texts, one core, {args.seconds:.0f}s per pass")
    print(f"cold start (process start → first result, best of 3): {cold:.2f} s")
    passes: list[tuple[str, Callable[[], None] | None]] = [
        ("uncached (every text analysed)", nlu.clear_cache),
        ("analysis reused (another day)", lambda: nlu.clear_cache(analyses=False)),
        ("answer kept (same day)", None),
    ]
    for label, forget in passes:
        rate, lat = _measure(nlu, texts, args.seconds, forget)
        print(
            f"{label:<32} {rate:>8.0f} msg/s   p50 {_percentile(lat, 0.5) * 1e3:.3f} ms"
            f"   p99 {_percentile(lat, 0.99) * 1e3:.3f} ms"
        )
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"peak RSS: {loaded_kb / 1024:.0f} MB with the NLU loaded; {rss_kb / 1024:.0f} MB with"
        " the passes' latency samples"
    )


if __name__ == "__main__":
    main()

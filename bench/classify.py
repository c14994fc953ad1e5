"""NLU benchmark: single-message throughput on one core, p50/p99 latency, cold start, peak RSS.

Run: ``make bench`` or ``.venv/bin/python bench/classify.py [--seconds N]``.
Messages are the held-out set's texts (realistic length and mix). Two passes are measured:
*cold cache* (every text analysed, the analysis cache disabled) and *warm* (the production
mix, where replies repeat and identical normalised texts are served from the cache).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(
    nlu: object, texts: list[str], seconds: float, cache: bool
) -> tuple[float, list[float]]:
    from intents.data import load_heldout

    now = load_heldout().now
    understand = nlu.understand  # type: ignore[attr-defined]
    cache_store = nlu._cache  # type: ignore[attr-defined]
    latencies: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for text in texts:
            if not cache:
                cache_store.clear()
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

    print(f"messages: {len(texts)} distinct held-out texts, one core, {args.seconds:.0f}s per pass")
    print(f"cold start (process start → first result, best of 3): {cold:.2f} s")
    for label, cache in (
        ("uncached (every text analysed)", False),
        ("cached (repeat replies)", True),
    ):
        rate, lat = _measure(nlu, texts, args.seconds, cache)
        print(
            f"{label:<32} {rate:>8.0f} msg/s   p50 {_percentile(lat, 0.5) * 1e3:.3f} ms"
            f"   p99 {_percentile(lat, 0.99) * 1e3:.3f} ms"
        )
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS: {rss_kb / 1024:.0f} MB")


if __name__ == "__main__":
    main()

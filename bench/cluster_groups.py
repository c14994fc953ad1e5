"""How a message's Redis work spreads over a 3-primary Redis Cluster: per inbound reply, the
groups the store's client sends (``ClusterConnection.call``), how many of them reach several
primaries, and the extra sequential steps those cost (a run is a stretch of a group for one
primary; runs after the first are extra sends and reads, and a run with a write waits).

Run: ``.venv/bin/python bench/cluster_groups.py [--messages 400] [--borrowers 50]``. Prints
figures; asserts nothing. The service runs in this process (``create_app`` on
``redis+cluster://``, the sandbox carrier) against a private 3-primary cluster on loopback
(bench/scale.py's); replies are held-out borrower texts (``intents/data/heldout.yaml``)
posted as signed Twilio webhooks one at a time, each processed and sent before the next.
The counting wraps the client's routing step; it adds no Redis work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from inbound import API_KEY, TWILIO_TOKEN, WEBHOOK_PATH, account_rows, daytime_zone, twilio_request
from scale import start_cluster

from bot.app import create_app
from bot.context import PIPELINE
from bot.settings import load_settings
from bot.storage import resp_cluster
from intents import Understander
from intents.data import load_heldout

Group = tuple[int, int, str]  # primaries, runs, command names


def count_groups(counts: Counter[Group]) -> None:
    """Every group the cluster client routes from now on is counted in ``counts``."""
    route = resp_cluster.ClusterConnection._route

    def counted(self: resp_cluster.ClusterConnection, commands: Any) -> list[str]:
        addrs = route(self, commands)
        names = " ".join(str(c[0]) for c in commands)
        runs = 1 + sum(a != b for a, b in itertools.pairwise(addrs))
        counts[(len(set(addrs)), runs, names if len(names) < 60 else names[:57] + "...")] += 1
        return addrs

    resp_cluster.ClusterConnection._route = counted  # type: ignore[method-assign]


async def run(args: argparse.Namespace, url: str) -> None:
    public = "https://sms.example.cn"
    settings = load_settings(
        api_key=API_KEY, twilio_auth_token=TWILIO_TOKEN, public_url=public, redis_url=url
    )
    app = create_app(settings, nlu=Understander.load())
    texts = [e.text for e in load_heldout().examples]
    rows = account_rows(args.borrowers, daytime_zone())
    counts: Counter[Group] = Counter()
    async with TestClient(TestServer(app)) as c:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        r = await c.post("/api/accounts", json={"accounts": rows, "start": False}, headers=auth)
        assert r.status == 200, await r.text()
        count_groups(counts)
        for i in range(args.messages):
            req = twilio_request(public, rows[i % len(rows)]["phone"], texts[i % len(texts)])
            body, headers = req
            r = await c.post(WEBHOOK_PATH, data=body, headers=headers)
            assert r.status == 200, await r.text()
            await app[PIPELINE].idle()
    n = args.messages
    groups = sum(counts.values())
    multi = sum(k for (p, _, _), k in counts.items() if p > 1)
    extra = sum(k * (runs - 1) for (_, runs, _), k in counts.items())
    print(f"{n} replies of {args.borrowers} borrowers on 3 primaries, per reply:")
    line = f"groups {groups / n:.2f}, to several primaries {multi / n:.2f}"
    print(f"  {line}, extra runs {extra / n:.2f}")
    print("  the groups to several primaries (per reply, primaries, runs, commands):")
    for (p, runs, names), k in sorted(counts.items(), key=lambda kv: -kv[1]):
        if p > 1 and k / n >= 0.01:
            print(f"    {k / n:5.2f}  {p}  {runs}  {names}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--borrowers", type=int, default=50)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        url, _ = start_cluster(Path(tmp), stack, None)
        asyncio.run(run(args, url))


if __name__ == "__main__":
    main()

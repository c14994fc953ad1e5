"""The store through Redis Sentinel (``redis+sentinel://``): a primary, its replica and one
Sentinel on loopback; the store follows a fail-over by itself, losing nothing it was told
was written."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from bot.records import QueuedEvent
from bot.storage.base import StoreUnavailable
from bot.storage.redis import RedisStore
from tests.service.conftest import RedisServer, _answers_ping, _free_port

pytestmark = pytest.mark.timeout(120)
SERVICE = "smsbot"


class Sentinel:
    def __init__(self, workdir: Path, primary: int) -> None:
        self.port = _free_port()
        self.conf = workdir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        binary = shutil.which("redis-server")
        assert binary is not None
        self.log = (workdir / "sentinel.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, str(self.conf), "--sentinel"], stdout=self.log, stderr=subprocess.STDOUT
        )

    def primary(self) -> int:
        with redis.Redis(port=self.port) as s:
            return int(s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1])

    def failover(self) -> None:
        with redis.Redis(port=self.port) as s:
            s.execute_command("SENTINEL", "FAILOVER", SERVICE)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, Sentinel]]:
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    primary = RedisServer(tmp_path / "p")
    primary.start()
    replica = RedisServer(tmp_path / "r", extra=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()
    sentinel = Sentinel(tmp_path, primary.port)
    try:
        for _ in range(100):
            if _answers_ping(sentinel.port):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        yield primary, replica, sentinel
    finally:
        sentinel.stop()
        replica.stop()
        primary.stop()


def _event(n: int) -> QueuedEvent:
    return QueuedEvent(id=f"e{n}", kind="tick", at=datetime(2026, 12, 1, tzinfo=UTC))


async def test_the_store_follows_a_sentinel_fail_over(
    watched: tuple[RedisServer, RedisServer, Sentinel],
) -> None:
    primary, replica, sentinel = watched
    store = RedisStore.from_url(f"redis+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}")
    try:
        assert await store.enqueue("A1", _event(1), dedup="m1")
        with redis.Redis(port=primary.port) as p:
            p.execute_command("WAIT", 1, 2000)  # on the replica before the fail-over
        sentinel.failover()
        for _ in range(100):
            if sentinel.primary() == replica.port:
                break
            await asyncio.sleep(0.1)
        assert sentinel.primary() == replica.port
        accepted = None
        for _ in range(100):  # like a provider: again while unavailable, same message id
            try:
                accepted = await store.enqueue("A1", _event(2), dedup="m2")
                break
            except StoreUnavailable:
                await asyncio.sleep(0.1)
        assert accepted is True
        assert not await store.enqueue("A1", _event(1), dedup="m1")  # a retry: still known
        queued = []
        while (head := await store.head("A1")) is not None:
            queued.append(head.id)
            assert await store.commit("A1", head.id, None, [], [], None)
        assert queued == ["e1", "e2"]
        with redis.Redis(port=replica.port) as r:
            assert r.info("replication")["role"] == "master"
    finally:
        await store.close()


def test_a_sentinel_url_is_checked_at_start_up() -> None:
    from bot.storage.connect import connection_for

    for bad in ("redis+sentinel://127.0.0.1:26379", "redis+sentinel://127.0.0.1/x"):
        with pytest.raises(ValueError, match="Sentinel URL"):
            connection_for(bad)

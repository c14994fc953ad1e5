"""Service test set-up: a private redis-server for the run, and the store under test.

The server is started here (never by scripts/test.sh and never the machine's own Redis): a
real ``redis-server`` on a free loopback port, no persistence, in a temporary directory,
stopped at the end of the session. The ``store`` fixture runs each test once on the memory
store and once on the Redis store (flushed before each test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.storage.base import Store
from tests.service.cluster import RedisCluster
from tests.service.storehelpers import open_store

_START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One private redis-server process; can be stopped, restarted (same port) and paused."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        aof: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.extra = extra  # more redis-server options (e.g. cluster mode)
        self.port = port or _free_port()
        # aof: every write on disk before Redis answers (appendfsync always), so a kill -9 of
        # the server loses nothing it acknowledged; a restart replays the file.
        self.aof = aof
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed: the Redis store's tests need it "
                "(scripts/test.sh installs it; or: apt-get install redis-server)"
            )
        log = self.workdir / f"redis-{self.port}.log"
        # The child keeps its own copy of the descriptor; ours is closed right away.
        with log.open("ab") as out:
            # fmt: off
            self._proc = subprocess.Popen(
                [
                    binary,
                    "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "",
                    *(("--appendonly", "yes", "--appendfsync", "always") if self.aof
                      else ("--appendonly", "no")),
                    "--dir", str(self.workdir), "--daemonize", "no",
                    *self.extra,
                ],
                cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
            )
            # fmt: on
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers_ping(self.port):
            if self._proc.poll() is not None:
                self._proc = None
                pytest.fail(f"redis-server exited at start:\n{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not answer PING within {_START_TIMEOUT_S} s")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash of the server (with ``aof``, what it acknowledged is on disk)."""
        proc, self._proc = self._proc, None
        assert proc is not None
        proc.kill()
        proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing is answered."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The run's private redis-server (sync, session-scoped: no event loop is involved)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of one test's own, for tests that stop or pause it."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> str:
    """The run's redis-server, emptied: for tests that start their own service or processes."""
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.flushdb()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """The run's private 3-primary Redis Cluster (started on first use)."""
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"), primaries=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The run's cluster, emptied: ``redis+cluster://…``."""
    await redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture(params=["redis", "cluster"])
async def shared_url(request: pytest.FixtureRequest) -> str:
    """One Redis or a Redis Cluster, emptied: for tests of several processes sharing it."""
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return await cluster.flush_url()
    server: RedisServer = request.getfixturevalue("redis_server")
    async with aioredis.Redis.from_url(server.url) as admin:
        await admin.flushdb()
    return server.url


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Each implementation of the store seam, empty; closed at teardown."""
    async for opened in open_store(request):
        yield opened

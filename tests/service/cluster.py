"""A private Redis Cluster on loopback for the tests: ``redis-server --cluster-enabled yes`` per
node (no persistence, in a temporary directory) joined by ``redis-cli --cluster create``.

Nodes can be killed, and slots moved between primaries (``reshard``), while a test runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

_START_TIMEOUT_S = 30.0


def _free_ports(n: int) -> list[int]:
    """n free ports whose cluster bus ports (+10000) are free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


class RedisCluster:
    """``primaries`` primaries, each with ``replicas`` replicas."""

    def __init__(self, workdir: Path, *, primaries: int = 3, replicas: int = 0) -> None:
        self.workdir = workdir
        self.replicas = replicas
        self.ports = _free_ports(primaries * (1 + replicas))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])

    def start(self) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            pytest.fail("redis-server and redis-cli are needed: apt-get install redis-server")
        try:
            self._create(binary, cli)
        except BaseException:
            self.stop()
            raise

    def _create(self, binary: str, cli: str) -> None:
        for port in self.ports:
            self._start_node(binary, port)
        for port in self.ports:
            self._wait(lambda p=port: self.command(p, "PING"))
        create = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
        )
        if create.returncode != 0:
            self.stop()
            pytest.fail(f"redis-cli --cluster create failed:\n{create.stdout.decode()}")
        self.wait_ok()

    def _start_node(self, binary: str, port: int) -> None:
        node_dir = self.workdir / str(port)
        node_dir.mkdir(exist_ok=True)
        with (node_dir / "redis.log").open("ab") as out:
            # fmt: off
            self.procs[port] = subprocess.Popen(
                [
                    binary, "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(node_dir),
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "1000", "--daemonize", "no",
                ],
                cwd=node_dir, stdout=out, stderr=subprocess.STDOUT,
            )
            # fmt: on

    def command(self, port: int, *args: object) -> object:
        """One command on one node (a connection of its own, closed after)."""
        with redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1) as client:
            return client.execute_command(*args)

    def _wait(self, ok: object) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            with contextlib.suppress(redis.RedisError):
                if ok():  # type: ignore[operator]
                    return
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("the Redis Cluster did not come up")
            time.sleep(0.05)

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def wait_ok(self) -> None:
        """Until every live node says cluster_state:ok and agrees on who serves the slots."""

        def ok() -> bool:
            maps = []
            for port in self.alive():
                if b"cluster_state:ok" not in self.command(port, "CLUSTER", "INFO"):  # type: ignore[operator]
                    return False
                slots = self.command(port, "CLUSTER", "SLOTS")
                maps.append(sorted(str(r[:3]) for r in slots))  # type: ignore[attr-defined]
            return all(m == maps[0] for m in maps)

        self._wait(ok)

    def primaries(self) -> list[int]:
        """Ports of the live primaries."""
        found = []
        for port in self.alive():
            with contextlib.suppress(redis.RedisError):
                info = self.command(port, "INFO", "replication")  # parsed by redis-py
                if info["role"] == "master":  # type: ignore[index]
                    found.append(port)
        return found

    async def flush(self) -> None:
        for port in self.primaries():
            async with aioredis.Redis(port=port) as admin:
                await admin.flushall()

    async def flush_url(self) -> str:
        await self.flush()
        return self.url

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def node_id(self, port: int) -> str:
        found = self.command(port, "CLUSTER", "MYID")
        return found.decode() if isinstance(found, bytes) else str(found)

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Moves ``slots`` slots from one primary to another (keys migrated one by one)."""
        ids = {p: self.node_id(p) for p in (source, target)}
        done = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "reshard",
                f"127.0.0.1:{source}",
                "--cluster-from",
                ids[source],
                "--cluster-to",
                ids[target],
                "--cluster-slots",
                str(slots),
                "--cluster-yes",
                "--cluster-pipeline",
                "10",
            ],
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()


async def wait_until(check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)

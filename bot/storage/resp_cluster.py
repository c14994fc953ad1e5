"""Redis Cluster on the store's own client: slot routing over one :class:`RedisConnection` per
primary (each multiplexed and auto-pipelined, with the scripts loaded on it).

``redis+cluster://[[user]:password@]host:port[,host:port...][?TLS options]`` (``rediss+cluster``
for TLS): the seeds; the rest of the cluster is learnt from ``CLUSTER SLOTS``.

Why not redis-py's cluster client: it costs about ten times the client CPU of
:mod:`bot.storage.resp` (issue 14: 288 µs against 26 µs per message), and CPU is what limits
the service. A group for one primary (most of them: one account's commands) takes the
single-server path; bench/scale.py measures the rest.

What a group (one :meth:`ClusterConnection.call`) keeps of the single-server guarantees:

- its commands run in their order: consecutive commands for one primary leave in one write
  (one run); a run that writes is sent only when every run before it has its replies, and
  the runs after it wait for its replies. So a group that writes on two primaries costs two
  round trips (the due-index steps before a commit, see bot.storage.redis), never a
  reordering; runs of reads only (whose order nobody can see) leave together;
- only what a reply proves did not run is sent again: ``MOVED`` (the slot has another owner:
  the map is updated, the command re-sent there, and the whole map reloaded in the
  background), ``ASK`` (a slot being migrated, the key already gone: ``ASKING`` + the command
  on the importing node, once), ``TRYAGAIN`` (a multi-key script whose keys are split by a
  migration: a short wait, then again), ``NOSCRIPT`` (scripts loaded on that node, then
  again). Redirected commands are re-sent before the group goes on, so later runs still see
  their effects. The one reordering left: within one run, commands of another slot than a
  redirected one have run before it is re-sent (commands of one key are redirected alike);
- a lost connection, a timeout, ``CLUSTERDOWN``, ``READONLY`` (a primary demoted in a
  failover) or too many redirections: StoreUnavailable (503, providers retry), and the slot
  map is loaded again before the next command, from any node that answers — so once a replica
  is promoted the store serves again by itself. Nothing whose reply was lost is re-sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Any

import hiredis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.storage.resp import (
    Command,
    RedisConnection,
    _redacted,
    scan_node,
    split_hosts,
)
from bot.storage.resp_errors import UNAVAILABLE, Outage, raise_first_error
from bot.telemetry import metrics

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
MAX_REDIRECTS = 16  # a slot moved twice and a few TRYAGAINs; more is a cluster not serving
TRYAGAIN_WAIT_S = 0.02  # times the attempt: a migration moves a key in well under a second

_MAP = "slot map"  # the outage of loading it (see ClusterConnection.call)
_RESENT = frozenset({"MOVED", "ASK", "TRYAGAIN", "NOSCRIPT"})  # replies proving "did not run"
# Commands that change nothing: runs of these may leave together (see ClusterConnection._runs).
_READS = frozenset(
    {"GET", "LINDEX", "LRANGE", "LLEN", "HGET", "HMGET", "HGETALL", "HVALS", "HKEYS",
     "HLEN", "HEXISTS", "ZSCORE", "ZRANGE", "ZCOUNT", "ZCARD", "SISMEMBER", "SMISMEMBER",
     "SMEMBERS", "SCARD", "EXISTS", "TYPE", "TTL", "PTTL", "PING"}
)  # fmt: skip
# Commands without a key: any primary answers them.
_KEYLESS = frozenset({"PING", "SCAN", "INFO", "SCRIPT", "FLUSHALL", "FLUSHDB", "DBSIZE", "TIME"})


# A message builds about ten keys, most of them again: their slots are remembered (a dict,
# emptied when full: cheaper per lookup than functools.lru_cache's bookkeeping).
_SLOT_OF: dict[str | bytes, int] = {}
_SLOT_CACHE_SIZE = 65536
_ERROR = hiredis.ReplyError

# The node a group was addressing when it failed, and the nodes a group reached: per task, as
# each drain, send and request is its own task. Kept on the connection they were shared by
# every group in flight, so an outage was blamed on whichever node another group had just
# addressed, and a success elsewhere declared it over: "unavailable" and "available again"
# alternated for healthy nodes (an integrator's trial: 159 WARNING lines for one outage).
_AT: ContextVar[str] = ContextVar("smsbot_cluster_at", default="")
_TOUCHED: ContextVar[Sequence[str]] = ContextVar("smsbot_cluster_touched", default=())


def _slot_of_key(key: str | bytes) -> int:
    slot = _SLOT_OF.get(key)
    if slot is None:
        if len(_SLOT_OF) >= _SLOT_CACHE_SIZE:
            _SLOT_OF.clear()
        slot = _SLOT_OF[key] = int(key_slot(key.encode() if isinstance(key, str) else key))
    return slot


def slot_of(command: Command) -> int | None:
    """The slot of a command's (first) key; None for a command without keys."""
    name = command[0]
    if name in ("EVAL", "EVALSHA"):
        return _slot_of_key(command[3]) if int(command[2]) else None
    if name in ("XREAD", "XREADGROUP"):
        return _slot_of_key(command[list(command).index("STREAMS") + 1])
    if name in _KEYLESS:
        return None
    return _slot_of_key(command[1])


class _Run:
    """Commands for one primary, sent; their replies come in ``sent``."""

    __slots__ = ("addr", "indexes", "sent")

    def __init__(
        self, addr: str, indexes: list[int], sent: asyncio.Future[list[Any]] | None
    ) -> None:
        self.addr = addr
        self.indexes = indexes
        self.sent = sent


def _consumed(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class ClusterConnection:
    """The :class:`bot.storage.resp.Connection` of a Redis Cluster."""

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float = 2.0,
        scripts: Sequence[bytes] = (),
    ) -> None:
        self.url = url
        self._seeds, path, template = split_hosts(url, CLUSTER_SCHEMES, "Redis Cluster")
        if path not in ([], ["0"]):
            raise ValueError(f"Redis Cluster has only database 0: {_redacted(url)!r}")
        # Every node is reached with the cluster URL's credentials and TLS options.
        self._node_url = template.replace("{db}", "0")
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "scripts": tuple(scripts),
        }
        self._nodes: dict[str, RedisConnection] = {}
        self._node(self._seeds[0])  # a bad TLS option or credential syntax fails here
        self.where = "cluster " + ",".join(self._seeds)
        # One outage log per node (a primary down while the others serve is one WARNING,
        # and one when it is back), and one for the slot map (no node gave one).
        self._outages: dict[str, Outage] = {}
        self._slots: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        self._primaries: list[str] = []
        self._stale = True  # the slot map must be (re)loaded before the next command
        self._refreshing: asyncio.Task[None] | None = None

    # --- the Connection interface --------------------------------------------------------

    async def call(self, *commands: Command) -> list[Any]:
        try:
            if self._stale:
                _AT.set(_MAP)
                await self._refresh()
            addrs = self._route(commands)
            first = addrs[0]
            if addrs.count(first) == len(addrs):
                # The usual case (one account's commands, or one global key): as on one
                # server, unless a reply says a command has to go elsewhere. Inline: every
                # call comes here, about seven a message (bench/scale.py).
                _AT.set(first)
                node = self._nodes.get(first) or self._node(first)
                protocol = node.connected() or await node.ready()
                replies = await protocol.send(commands, node.shas)
                for r in replies:
                    if isinstance(r, _ERROR):
                        replies = await self._redirected(commands, first, replies)
                        raise_first_error(replies)
                        break
            else:
                replies = await self._runs(commands, addrs)
                raise_first_error(replies)
        except UNAVAILABLE as exc:
            self._stale = True
            raise self._outage(_AT.get()).unavailable(exc, commands) from exc
        if self._outages:  # some node was down: those this group reached serve again
            for addr in (_MAP, *_TOUCHED.get()):
                if (outage := self._outages.pop(addr, None)) is not None:
                    outage.served()
        return replies

    async def one(self, *command: Any) -> Any:
        return (await self.call(command))[0]

    async def scan(
        self, pattern: str, *, type_: str | None = None, count: int = 1000
    ) -> AsyncIterator[list[bytes]]:
        """SCAN on every primary in turn (keys that move meanwhile may be missed or seen
        twice, as SCAN allows on one server too while keys change)."""
        if self._stale:
            await self.call(("PING",))  # loads the map, or raises StoreUnavailable
        for addr in list(self._primaries):
            async for batch in scan_node(self._node(addr), pattern, type_, count):
                yield batch

    def listener(self, socket_timeout: float) -> ClusterConnection:
        return ClusterConnection(self.url, socket_timeout=socket_timeout)

    async def close(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        for node in self._nodes.values():
            await node.close()
        self._nodes.clear()

    def node(self, addr: str) -> RedisConnection:
        """The connection to one node (``host:port``), e.g. for a per-node INFO."""
        return self._node(addr)

    async def ping_primaries(self) -> None:
        """Every primary answers a PING (readiness: with one down, part of the keyspace
        cannot be served, though the others answer); StoreUnavailable naming it if not."""
        if self._stale:
            await self.call(("PING",))  # loads the map, or raises StoreUnavailable
        for addr in list(self._primaries):
            _AT.set(addr)
            try:
                await (await self._node(addr).ready()).send([("PING",)])
            except UNAVAILABLE as exc:
                self._stale = True
                raise self._outage(addr).unavailable(exc, [("PING",)]) from exc
            if (outage := self._outages.pop(addr, None)) is not None:
                outage.served()  # a probe may be the first to see a primary back

    def _outage(self, addr: str) -> Outage:
        """The outage log of one node (or of the slot map)."""
        outage = self._outages.get(addr)
        if outage is None:
            outage = self._outages[addr] = Outage(f"{addr} of {self.where}")
        return outage

    async def primaries(self) -> list[str]:
        """``host:port`` of every primary (after loading the map if needed)."""
        if self._stale:
            await self.call(("PING",))
        return list(self._primaries)

    # --- routing -------------------------------------------------------------------------

    def _node(self, addr: str) -> RedisConnection:
        node = self._nodes.get(addr)
        if node is None:
            node = RedisConnection(self._node_url.replace("{addr}", addr), **self._options)
            self._nodes[addr] = node
        return node

    def _addr(self, slot: int | None) -> str:
        if slot is None:
            if not self._primaries:
                raise RedisConnectionError(f"Redis {self.where} has no primary")
            return self._primaries[0]
        addr = self._slots[slot]
        if addr is None:
            self._stale = True
            _AT.set(_MAP)
            raise RedisConnectionError(f"Redis {self.where}: no primary serves slot {slot}")
        return addr

    def _route(self, commands: Sequence[Command]) -> list[str]:
        """The primary of each command; the group's nodes are remembered in ``_TOUCHED``."""
        slots = self._slots
        addrs: list[str] = []
        for c in commands:
            slot = slot_of(c)
            addrs.append((slots[slot] if slot is not None else None) or self._addr(slot))
        _TOUCHED.set(addrs)
        return addrs

    async def _redirected(
        self, commands: Sequence[Command], addr: str, got: list[Any]
    ) -> list[Any]:
        """The replies of a group sent to one primary, once the redirected ones are in."""
        replies: list[Any] = [None] * len(commands)
        await self._settle(commands, _Run(addr, list(range(len(commands))), None), got, replies)
        return replies

    async def _runs(self, commands: Sequence[Command], addrs: list[str]) -> list[Any]:
        """A group whose commands are on several primaries."""
        replies = [None] * len(commands)
        # Runs of consecutive commands per primary. Runs of reads only leave together (their
        # order cannot be seen); a run with a write waits for every run before it, and every
        # run after it waits for it (the index-before-script rule of bot.storage.redis).
        started: list[_Run] = []
        start = 0
        while start < len(commands):
            addr = addrs[start]
            end = start + 1
            while end < len(commands) and addrs[end] == addr:
                end += 1
            indexes = range(start, end)
            if all(commands[i][0] in _READS for i in indexes):
                started.append(
                    self._start(commands, addr, indexes)
                    or await self._connected_start(commands, addr, indexes)
                )
            else:
                if started:
                    await self._finish(commands, started, replies)
                    started = []
                run = self._start(commands, addr, indexes) or await self._connected_start(
                    commands, addr, indexes
                )
                await self._finish(commands, [run], replies)
            start = end
        if started:
            await self._finish(commands, started, replies)
        return replies

    def _start(self, commands: Sequence[Command], addr: str, run: range) -> _Run | None:
        """Sends one run on the node's open connection (None: there is none yet)."""
        _AT.set(addr)
        node = self._node(addr)
        protocol = node.connected()
        if protocol is None:
            return None
        indexes = list(run)
        return _Run(addr, indexes, protocol.send([commands[i] for i in indexes], node.shas))

    async def _connected_start(self, commands: Sequence[Command], addr: str, run: range) -> _Run:
        """:meth:`_start` once the node's connection is made (the first time, after a loss)."""
        protocol = await self._node(addr).ready()
        node = self._node(addr)
        indexes = list(run)
        return _Run(addr, indexes, protocol.send([commands[i] for i in indexes], node.shas))

    async def _finish(
        self, commands: Sequence[Command], runs: list[_Run], replies: list[Any]
    ) -> None:
        """The replies of runs already sent, and whatever of them is redirected."""
        for n, run in enumerate(runs):
            assert run.sent is not None
            _AT.set(run.addr)
            try:
                got = await run.sent
            except BaseException:
                for rest in runs[n + 1 :]:  # their failure is this one's: not worth a log
                    assert rest.sent is not None
                    rest.sent.add_done_callback(_consumed)
                raise
            for r in got:
                if isinstance(r, _ERROR):
                    await self._settle(commands, run, got, replies)
                    break
            else:
                for i, reply in zip(run.indexes, got, strict=True):
                    replies[i] = reply

    async def _settle(
        self, commands: Sequence[Command], run: _Run, got: list[Any], replies: list[Any]
    ) -> None:
        asking: set[int] = set()
        batches = {run.addr: run.indexes}
        for attempt in range(MAX_REDIRECTS):
            again: dict[str, list[int]] = {}
            next_asking: set[int] = set()
            wait = False
            for target, indexes in batches.items():
                _AT.set(target)
                node = self._node(target)
                if attempt:  # the first attempt's replies are ``got``
                    protocol = await node.ready()
                    out: list[Command] = []
                    for i in indexes:
                        if i in asking:
                            out.append(("ASKING",))
                        out.append(commands[i])
                    got = await protocol.send(out, node.shas)
                    if asking:
                        got = [r for r, c in zip(got, out, strict=True) if c[0] != "ASKING"]
                noscript = False
                for i, reply in zip(indexes, got, strict=True):
                    if not isinstance(reply, hiredis.ReplyError):
                        replies[i] = reply
                        continue
                    word, _, rest = str(reply).partition(" ")
                    if word in _RESENT:
                        metrics.REDIS_RESENT.labels(word.lower()).inc()
                    if word == "MOVED":
                        slot, moved_to = rest.split(" ", 1)
                        self._slots[int(slot)] = moved_to
                        self._reload_soon()
                        again.setdefault(moved_to, []).append(i)
                    elif word == "ASK":
                        _, ask_to = rest.split(" ", 1)
                        again.setdefault(ask_to, []).append(i)
                        next_asking.add(i)
                    elif word in ("TRYAGAIN", "NOSCRIPT"):
                        wait = wait or word == "TRYAGAIN"
                        noscript = noscript or word == "NOSCRIPT"
                        again.setdefault(target, []).append(i)
                        if i in asking:
                            next_asking.add(i)
                    elif word in ("CLUSTERDOWN", "READONLY"):
                        raise RedisConnectionError(f"Redis {self.where}: {reply}")
                    else:
                        replies[i] = reply
                if noscript:
                    await node.load_scripts(await node.ready())
            if not again:
                return
            if wait:
                await asyncio.sleep(TRYAGAIN_WAIT_S * (attempt + 1))
            batches, asking = again, next_asking
        raise RedisConnectionError(f"Redis {self.where}: still redirected after {MAX_REDIRECTS}")

    # --- the slot map --------------------------------------------------------------------

    def _reload_soon(self) -> None:
        """After a MOVED: the rest of the map has probably changed too (a reshard moves
        many slots); reloaded once in the background, whatever the number of MOVEDs."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._load_map())
            self._refreshing.add_done_callback(self._loaded)

    def _loaded(self, task: asyncio.Task[None]) -> None:
        # A background reload that failed: the next command loads the map (and says why).
        if not task.cancelled() and task.exception() is not None:
            self._stale = True

    async def _refresh(self) -> None:
        self._reload_soon()
        assert self._refreshing is not None
        await asyncio.shield(self._refreshing)

    async def _load_map(self) -> None:
        # The primaries known last first (they know the newest map), then the seeds.
        candidates = list(dict.fromkeys([*self._primaries, *self._seeds]))
        failures: list[str] = []
        for addr in candidates:
            try:
                protocol = await self._node(addr).ready()
                (reply,) = await protocol.send([("CLUSTER", "SLOTS")])
            except UNAVAILABLE as exc:
                failures.append(f"{addr}: {exc}")
                continue
            if isinstance(reply, hiredis.ReplyError):
                failures.append(f"{addr}: {reply}")
                continue
            slots: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
            primaries: list[str] = []
            for start, end, primary, *_replicas in reply:
                host = primary[0].decode() if primary[0] else addr.rpartition(":")[0]
                owner = f"{host}:{int(primary[1])}"
                slots[int(start) : int(end) + 1] = [owner] * (int(end) - int(start) + 1)
                if owner not in primaries:
                    primaries.append(owner)
            if not primaries:
                failures.append(f"{addr}: no slot is served")
                continue
            self._slots, self._primaries, self._stale = slots, primaries, False
            return
        raise RedisConnectionError(
            f"no node of Redis {self.where} gave a slot map ({'; '.join(failures)})"
        )

"""One multiplexed, auto-pipelined Redis connection (RESP2, parsed by hiredis).

Why not a redis-py client per call: CPU is what limits a busy service, and a redis-py call
costs about 100 µs of client CPU whatever Redis does (socket wake-ups, a pool lock, a timeout
context per reply); even inside a redis-py pipeline a command costs about 12 µs. Here every
command issued during one event-loop iteration is packed by hiredis and written with one
system call, and a single reader hands each reply to its waiter in order: a few µs per
command (bench/inbound.py). This is the design of ioredis' auto-pipelining and of aioredis 1.

Guarantees:
- a *group* (the commands of one :meth:`RedisConnection.call`) is written contiguously, so
  Redis runs it in that order (it is not a transaction: each command, each Lua script, is
  atomic on its own); commands issued after another one's reply arrived run after it;
- a Redis error reply raises in its group only (redis-py's exception classes, so callers
  handle both alike); the other commands of the group have run;
- a lost connection or a reply later than ``socket_timeout`` fails every command waiting on
  that connection (whether each ran is unknown, as with any lost reply) and closes it; the
  next command connects again, so the store recovers by itself when Redis is back. Nothing is
  ever re-sent (a retried command whose reply was lost could enqueue twice).

redis-py provides the exception classes; the tests and the benchmark use its client. A Redis
Cluster (bot/storage/resp_cluster.py) runs one of these per primary, Sentinel
(bot/storage/resp_sentinel.py) one to the primary it names; bot/storage/connect.py picks by URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import hiredis
from redis.exceptions import (
    AuthenticationError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.storage.resp_errors import UNAVAILABLE, Outage, raise_first_error, reply_error
from bot.storage.tls import tls_context, tls_options

Command = Sequence[Any]


class Connection(Protocol):
    """What the Redis stores use: a single server (:class:`RedisConnection`) or a Redis
    Cluster (:class:`bot.storage.resp_cluster.ClusterConnection`)."""

    url: str
    where: str

    async def call(self, *commands: Command) -> list[Any]: ...

    async def one(self, *command: Any) -> Any: ...

    def scan(
        self, pattern: str, *, type_: str | None = None, count: int = 1000
    ) -> AsyncIterator[list[bytes]]: ...

    def listener(self, socket_timeout: float) -> Connection: ...

    async def close(self) -> None: ...


class _Group:
    __slots__ = ("future", "left", "replies", "sent_at")

    def __init__(self, future: asyncio.Future[list[Any]], size: int, sent_at: float) -> None:
        self.future = future
        self.left = size
        self.replies: list[Any] = []
        self.sent_at = sent_at


class _Protocol(asyncio.Protocol):
    def __init__(self, where: str, timeout: float | None) -> None:
        self._where = where
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[_Group] = deque()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost: Exception | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(RedisConnectionError(f"Redis at {self._where} sent garbage: {exc}"))
                return
            if reply is False:
                return
            if not self._waiting:  # a reply nobody asked for: the stream cannot be trusted
                self._fail(RedisConnectionError(f"Redis at {self._where} sent an extra reply"))
                return
            group = self._waiting[0]
            group.replies.append(reply)
            group.left -= 1
            if group.left == 0:
                self._waiting.popleft()
                if not group.future.done():  # its caller may have been cancelled
                    group.future.set_result(group.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
        self._fail(RedisConnectionError(f"connection to Redis at {self._where} lost ({reason})"))

    # --- commands ------------------------------------------------------------------------

    def send(
        self, commands: Sequence[Command], shas: dict[bytes, bytes] | None = None
    ) -> asyncio.Future[list[Any]]:
        if self.lost is not None:
            raise self.lost
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        for c in commands:
            if shas and c[0] == "EVAL" and (sha := shas.get(c[1])) is not None:
                c = ("EVALSHA", sha, *c[2:])  # a script Redis already has: send its SHA1
            self._out.append(hiredis.pack_command(tuple(c)))
        self._waiting.append(_Group(future, len(commands), self._loop.time()))
        if not self._flush_scheduled:
            # Everything issued until the end of this loop iteration leaves in one write.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        if self._watchdog is None and self._timeout is not None:
            self._watchdog = self._loop.call_later(self._timeout, self._check)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None and self.lost is None:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def _check(self) -> None:
        """One timer per connection (not one per command): the oldest reply is overdue?"""
        self._watchdog = None
        if not self._waiting or self._timeout is None:
            return
        overdue = self._waiting[0].sent_at + self._timeout - self._loop.time()
        if overdue <= 0:
            self._fail(
                RedisTimeoutError(
                    f"Timeout reading from Redis at {self._where} (no reply in {self._timeout} s)"
                )
            )
        else:
            self._watchdog = self._loop.call_later(overdue, self._check)

    def _fail(self, exc: Exception) -> None:
        """Every waiter hears of it; the connection is not used again."""
        if self.lost is None:
            self.lost = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.abort()
        while self._waiting:
            group = self._waiting.popleft()
            if not group.future.done():
                group.future.set_exception(exc)

    def close(self) -> None:
        self._fail(RedisConnectionError(f"connection to Redis at {self._where} closed"))


def _redacted(url: str) -> str:
    """``url`` without its password: error messages reach logs and terminals."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def split_hosts(url: str, schemes: Sequence[str], what: str) -> tuple[list[str], list[str], str]:
    """A cluster's or Sentinel's ``<scheme>://[[user]:password@]host:port[,host:port...]
    [/path...][?query]``: its ``host:port`` list, its path's parts, and the URL of one node
    as a template (``{addr}``, ``{db}``) with the credentials and TLS options."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(f"not a {schemes[0]}:// URL: {_redacted(url)!r}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    found: list[str] = []
    for seed in hosts.split(","):
        host, _, port = seed.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{what} URL needs host:port for each server: {_redacted(url)!r}")
        found.append(f"{host}:{int(port)}")
    path = [unquote(p) for p in parts.path.strip("/").split("/") if p]
    auth = f"{userinfo}@" if userinfo else ""
    query = f"?{parts.query}" if parts.query else ""
    scheme = parts.scheme.split("+", 1)[0]  # rediss+cluster: TLS to every node
    return found, path, f"{scheme}://{auth}{{addr}}/{{db}}{query}"


class RedisConnection:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS; options as in
    redis-py: ``?ssl_ca_certs=…&ssl_cert_reqs=…&ssl_certfile=…&ssl_keyfile=…``) or
    ``unix://path[?db=N]``. Connects on first use and again after a failure."""

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float = 2.0,
        ssl_context: ssl.SSLContext | None = None,
        scripts: Sequence[bytes] = (),
    ) -> None:
        """``scripts``: Lua bodies loaded on connecting; ``EVAL`` of one of them is sent as
        ``EVALSHA`` (a script body is most of a command's bytes)."""
        self.url = url  # for a second connection to the same server (never logged: a password)
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self._path: str | None = None
        self._host = "localhost"
        self._port = 6379
        self._ssl: ssl.SSLContext | None = None
        tls = tls_options(query)
        if parts.scheme == "unix":
            self._path = unquote(parts.path)
            self.where = self._path
        elif parts.scheme in ("redis", "rediss"):
            self._host = unquote(parts.hostname or "localhost")
            self._port = parts.port or 6379
            self.where = f"{self._host}:{self._port}"
            if parts.scheme == "rediss":
                self._ssl = ssl_context or tls_context(tls)
        else:
            raise ValueError(
                f"Redis URL must start with redis://, rediss:// or unix://: {_redacted(url)!r}"
            )
        if tls and parts.scheme != "rediss":
            # Settings for a TLS connection on a plain one: the operator meant rediss://.
            raise ValueError(f"Redis URL has {', '.join(sorted(tls))} but is not rediss://")
        db_text = query.get("db") or (parts.path.strip("/") if parts.scheme != "unix" else "")
        try:
            self.db = int(db_text) if db_text else 0
        except ValueError:
            raise ValueError(
                f"Redis URL has a database that is not a number: {_redacted(url)!r}"
            ) from None
        self.where += f"/{self.db}"
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = socket_timeout
        self._connect_timeout = socket_connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._shas = {body: hashlib.sha1(body).hexdigest().encode() for body in scripts}
        self._outage = Outage(self.where)

    async def call(self, *commands: Command) -> list[Any]:
        """Runs the commands (in this order); their replies as Redis sent them (bytes, int,
        list, None). An error reply raises (redis-py's exception classes); a lost connection,
        a timeout, or Redis refusing writes (OOM, READONLY, LOADING) is StoreUnavailable."""
        try:
            protocol = await self.ready()
            replies = await protocol.send(commands, self._shas)
            if any(
                isinstance(r, hiredis.ReplyError) and str(r).startswith("NOSCRIPT") for r in replies
            ):
                # Redis forgot its scripts (SCRIPT FLUSH): load them and send the group again.
                # A script that failed so did not run; callers put scripts last in a group and
                # only commands safe to repeat before them.
                await self.load_scripts(protocol)
                replies = await protocol.send(commands, self._shas)
            raise_first_error(replies)
        except UNAVAILABLE as exc:
            raise self._outage.unavailable(exc, commands) from exc
        self._outage.served()
        return replies

    def connected(self) -> _Protocol | None:
        """The open connection, if there is one (no await: the cluster's hot path)."""
        protocol = self._protocol
        return protocol if protocol is not None and protocol.lost is None else None

    async def ready(self) -> _Protocol:
        """The open connection (made, with the scripts loaded, if there is none)."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        return protocol

    @property
    def shas(self) -> dict[bytes, bytes]:
        return self._shas

    def scan(
        self, pattern: str, *, type_: str | None = None, count: int = 1000
    ) -> AsyncIterator[list[bytes]]:
        """Every key matching ``pattern``, a SCAN page at a time (never blocks Redis)."""
        return scan_node(self, pattern, type_, count)

    def listener(self, socket_timeout: float) -> RedisConnection:
        """A connection of its own to the same server (for blocking reads)."""
        return RedisConnection(self.url, socket_timeout=socket_timeout)

    async def one(self, *command: Any) -> Any:
        """Runs one command; its reply."""
        return (await self.call(command))[0]

    async def load_scripts(self, protocol: _Protocol) -> None:
        if not self._shas:
            return
        replies = await protocol.send([("SCRIPT", "LOAD", body) for body in self._shas])
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise reply_error(reply)

    async def _connect(self) -> _Protocol:
        # Callers that arrive while a connection is being made wait for that one.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Protocol:
        where = self.where
        made: list[_Protocol] = []

        def factory() -> _Protocol:
            made.append(_Protocol(where, self._timeout))
            return made[-1]

        try:
            protocol = await self._handshake(factory)
        except BaseException:
            # Timed out, refused or cancelled (a close() meanwhile) half-way: the socket is
            # not left open.
            for half in made:
                half.close()
            raise
        self._protocol = protocol
        return protocol

    async def _handshake(self, factory: Callable[[], _Protocol]) -> _Protocol:
        """Connects, authenticates, selects the database and loads the scripts."""
        loop = asyncio.get_running_loop()
        where = self.where
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._path is not None:
                    _, protocol = await loop.create_unix_connection(factory, self._path)
                else:
                    _, protocol = await loop.create_connection(
                        factory, self._host, self._port, ssl=self._ssl
                    )
                hello: list[Command] = []
                if self._password is not None:
                    auth = (self._username, self._password) if self._username else (self._password,)
                    hello.append(("AUTH", *auth))
                if self.db:
                    hello.append(("SELECT", self.db))
                hello += [("SCRIPT", "LOAD", body) for body in self._shas]
                if hello:
                    refused = next(
                        (
                            r
                            for r in await protocol.send(hello)
                            if isinstance(r, hiredis.ReplyError)
                        ),
                        None,
                    )
                    if refused is not None:
                        protocol.close()
                        # A wrong password or database is a set-up error: "unavailable", with
                        # Redis's own words (never the password) for the operator.
                        error = reply_error(refused)
                        if not isinstance(error, AuthenticationError):
                            error = RedisConnectionError(
                                f"Redis at {where} refused the connection set-up: {refused}"
                            )
                        raise error
        except TimeoutError:
            raise RedisTimeoutError(
                f"Timeout connecting to Redis at {where} ({self._connect_timeout} s)"
            ) from None
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to Redis at {where}: {exc}") from exc
        return protocol

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None


async def scan_node(
    node: RedisConnection, pattern: str, type_: str | None, count: int
) -> AsyncIterator[list[bytes]]:
    cursor: bytes | int = 0
    extra = ("TYPE", type_) if type_ else ()
    while True:
        cursor, batch = await node.one("SCAN", cursor, "MATCH", pattern, "COUNT", count, *extra)
        yield batch
        if int(cursor) == 0:
            return

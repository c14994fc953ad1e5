"""The store's Redis client for a URL: one server, a Redis Cluster or a Sentinel-watched
primary (all :class:`bot.storage.resp.Connection`)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from bot.storage.resp import Connection, RedisConnection
from bot.storage.resp_cluster import CLUSTER_SCHEMES, ClusterConnection
from bot.storage.resp_sentinel import SENTINEL_SCHEMES, SentinelConnection


def store_kind(url: str | None) -> str:
    """What a store URL names, for the banner: memory, redis, redis cluster or redis sentinel."""
    if not url:
        return "memory (data is lost on exit)"
    scheme = urlsplit(url).scheme
    if scheme in CLUSTER_SCHEMES:
        return "redis cluster"
    return "redis sentinel" if scheme in SENTINEL_SCHEMES else "redis"


def connection_for(
    url: str,
    *,
    socket_timeout: float | None = 5.0,
    socket_connect_timeout: float = 2.0,
    scripts: Sequence[bytes] = (),
) -> Connection:
    """``redis+cluster://`` a cluster, ``redis+sentinel://`` Sentinel, else one server."""
    scheme = urlsplit(url).scheme
    kind: type[RedisConnection | ClusterConnection | SentinelConnection] = RedisConnection
    if scheme in CLUSTER_SCHEMES:
        kind = ClusterConnection
    elif scheme in SENTINEL_SCHEMES:
        kind = SentinelConnection
    return kind(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        scripts=scripts,
    )

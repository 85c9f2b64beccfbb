"""The Redis client. Redis is an optimisation: timeouts are tens of milliseconds, not seconds.

One factory for both deployments: a single Redis, or Redis Cluster (``CATALOG_REDIS_CLUSTER``).
Code that talks to Redis is typed against :data:`RedisClient` and uses only what both offer;
where the two differ (which keys may share a script call, where the marks live) it asks
:func:`is_cluster`.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import hiredis
from redis.asyncio import Connection, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import DataError, RedisClusterException, RedisError
from redis.typing import EncodableT

from app.core.settings import RedisSettings

RedisClient: TypeAlias = Redis | RedisCluster
# What a Redis call can raise when Redis (or a cluster node) is down, slow or moving slots.
# RedisClusterException (no node covers a slot, no node answers) is not a RedisError.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError, TimeoutError)


class Pingable(Protocol):
    """What readiness needs of either client."""

    def ping(self, **kwargs: Any) -> Any: ...  # redis-py types it sync-or-async


class HiredisPackingConnection(Connection):
    """Commands packed by hiredis in C, as redis-py's sync client does; its asyncio client packs
    in Python, which was the relay's largest CPU cost after decoding (about 0.1 s per 100,000
    events, ~6,000 arguments per batch). Same bytes on the wire (tests/unit/core/test_redis.py).
    """

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        # As redis-py: a command name may carry literal arguments ("CONFIG GET").
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        try:
            packed = tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
            return [hiredis.pack_command(packed)]  # type: ignore[arg-type]  # its stub types a 1-tuple
        except TypeError as exc:
            raise DataError(str(exc)) from exc


def create_redis(settings: RedisSettings, timeout_ms: int | None = None) -> RedisClient:
    """A client whose pool carries the timeouts and the retry policy (redis-py 8 ignores them on Redis()).

    Display reads use the tight default; the relay passes a longer timeout for its big pipelines.
    """
    timeout = (timeout_ms or settings.socket_timeout_ms) / 1000
    if settings.cluster:
        return _create_cluster(settings.url, timeout)
    pool = ConnectionPool.from_url(
        settings.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
        max_connections=64,
        connection_class=HiredisPackingConnection,  # rediss:// and unix:// URLs keep their own class
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it


def cluster_startup_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """``redis://[auth@]h1:p1,h2:p2,.../0`` as the URL of its first node and the other nodes: any
    one that answers tells the client the whole cluster, so a process started while the first
    node is down still finds it."""
    parts = urlsplit(url)
    auth, at, hosts = parts.netloc.rpartition("@")
    first, *others = hosts.split(",")
    nodes = [(host, int(port)) for host, _, port in (node.rpartition(":") for node in others)]
    return urlunsplit(parts._replace(netloc=f"{auth}{at}{first}")), nodes


def _create_cluster(url: str, timeout: float) -> RedisCluster:
    # Two attempts, no backoff: a MOVED or a dead master makes the client reload the slot map and
    # try again once; longer outages are the callers' breaker's business, not a retry loop's.
    first, others = cluster_startup_nodes(url)
    client = RedisCluster.from_url(
        first,
        startup_nodes=[ClusterNode(host, port) for host, port in others],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=2),
        max_connections=64,
        require_full_coverage=False,  # a shard in failover should not fail the others' keys
    )
    # RedisCluster takes no connection class; nodes it learns later are built from these kwargs.
    if not client.connection_kwargs.get("ssl"):
        client.connection_kwargs["connection_class"] = HiredisPackingConnection
        client.nodes_manager.connection_kwargs["connection_class"] = HiredisPackingConnection
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_class = HiredisPackingConnection
    return client


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


def slot_of(key: bytes | str) -> int:
    """The cluster hash slot of ``key`` (its ``{tag}`` if it has one)."""
    return int(key_slot(key.encode() if isinstance(key, str) else key))


async def shard_tags(client: RedisClient) -> list[str]:
    """One hash tag per master, a key ``x:{tag}`` lands on that master's slots; ``[""]`` for a
    single Redis. Stable across a failover: the promoted replica owns the same slots."""
    if not isinstance(client, RedisCluster):
        return [""]
    await client.initialize()
    owner = {slot: nodes[0].name for slot, nodes in client.nodes_manager.slots_cache.items() if nodes}
    tags: dict[str, str] = {}
    i = 0
    while len(tags) < len(set(owner.values())) and i < 100_000:
        tag = f"s{i}"
        node = owner.get(slot_of(tag))
        if node is not None and node not in tags:
            tags[node] = tag
        i += 1
    return sorted(tags.values(), key=lambda t: int(t[1:]))

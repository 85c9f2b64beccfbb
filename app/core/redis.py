"""The Redis client. Redis is an optimisation: timeouts are tens of milliseconds, not seconds."""

from __future__ import annotations

import hiredis
from redis.asyncio import Connection, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import DataError
from redis.typing import EncodableT

from app.core.settings import RedisSettings


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


def create_redis(settings: RedisSettings, timeout_ms: int | None = None) -> Redis:
    """A client whose pool carries the timeouts and the retry policy (redis-py 8 ignores them on Redis()).

    Display reads use the tight default; the relay passes a longer timeout for its big pipelines.
    """
    timeout = (timeout_ms or settings.socket_timeout_ms) / 1000
    pool = ConnectionPool.from_url(
        settings.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
        max_connections=64,
        connection_class=HiredisPackingConnection,  # rediss:// and unix:// URLs keep their own class
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it

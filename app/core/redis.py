"""The Redis client. Redis is an optimisation: timeouts are tens of milliseconds, not seconds."""

from __future__ import annotations

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.core.settings import RedisSettings


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
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it

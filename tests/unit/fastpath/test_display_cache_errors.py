"""A Redis that fails in any of its ways is a cache bypass, never an error for the reader.

Found by running the system tier against a Redis Cluster with every node stopped: the cluster
client raises ``RedisClusterException`` (no node covers the slot), which is not a ``RedisError``,
and a product page answered 500 instead of reading the database.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ClusterDownError, ConnectionError, RedisClusterException, SlotNotCoveredError

from app.core.breaker import CircuitBreaker
from app.fastpath.display_cache import DisplayCache


class _FailingRedis:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def register_script(self, _source: str) -> Any:
        return object()

    async def get(self, _key: str) -> bytes:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("refused"),
        ClusterDownError("CLUSTERDOWN"),
        RedisClusterException("no node answered"),
        SlotNotCoveredError("slot 42 is not covered"),
        OSError("unreachable"),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_every_redis_failure_is_a_bypass(error: BaseException) -> None:
    cache = DisplayCache(_FailingRedis(error), CircuitBreaker("redis", cooldown_s=60), timeout_s=1)  # type: ignore[arg-type]
    assert await cache.get_product(7) == (None, "bypass")

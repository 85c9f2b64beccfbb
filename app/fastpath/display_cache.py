"""The display cache in front of the replicas: product entries, generation-versioned lists.

Redis is an optimisation: every call here goes through a circuit breaker with a hard timeout, and
a failure means "read around the cache" (``None`` and state ``bypass``), never an error page.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, TypeVar

from app.contracts.cache_keys import decode_entry, lease_key, parse_generation, product_key
from app.contracts.cache_scripts import CacheScripts
from app.core.breaker import CircuitBreaker
from app.core.metrics import CACHE_REQUESTS
from app.core.redis import REDIS_ERRORS, RedisClient

T = TypeVar("T")
CacheState = Literal["hit", "miss", "bypass"]


class CacheUnavailableError(Exception):
    """Redis is skipped (breaker open) or just failed; the caller reads around the cache."""


@dataclass(frozen=True, slots=True)
class ProductEntry:
    version: int
    body: bytes


def _as_bytes(raw: bytes | str) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode()


def jittered_ms(ttl_s: int, spread: float = 0.1) -> int:
    """TTL with ±10% jitter so entries filled together do not expire together."""
    return int(ttl_s * 1000 * random.uniform(1 - spread, 1 + spread))


class DisplayCache:
    def __init__(self, redis: RedisClient, breaker: CircuitBreaker, timeout_s: float) -> None:
        self.redis = redis
        self.breaker = breaker
        self.timeout_s = timeout_s
        self.scripts = CacheScripts(redis)

    async def _call(self, operation: Awaitable[T]) -> T:
        if not self.breaker.allow():
            if asyncio.iscoroutine(operation):
                operation.close()
            raise CacheUnavailableError
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await operation
        except REDIS_ERRORS as exc:
            self.breaker.failure()
            raise CacheUnavailableError from exc
        except BaseException:
            # Cancelled (the client went away) or an unexpected error: no verdict on Redis, and
            # a half-open breaker must not wait for this caller forever.
            self.breaker.release_probe()
            raise
        self.breaker.success()
        return result

    # ---------------------------------------------------------------- products

    async def get_product(self, product_id: int) -> tuple[ProductEntry | None, CacheState]:
        try:
            raw = await self._call(self.redis.get(product_key(product_id)))
        except CacheUnavailableError:
            CACHE_REQUESTS.labels("product", "bypass").inc()
            return None, "bypass"
        if raw is None:
            CACHE_REQUESTS.labels("product", "miss").inc()
            return None, "miss"
        version, body = decode_entry(raw)
        CACHE_REQUESTS.labels("product", "hit").inc()
        return ProductEntry(version, body), "hit"

    async def fill_product(self, product_id: int, version: int, body: bytes, ttl_s: int) -> bool | None:
        """Fenced compare-and-set; True stored, False refused as stale, None when Redis is skipped."""
        try:
            stored = await self._call(self.scripts.fill_if_newer(product_id, version, body, jittered_ms(ttl_s)))
        except CacheUnavailableError:
            return None
        CACHE_REQUESTS.labels("product", "fill" if stored else "fill-refused").inc()
        return stored

    async def take_lease(self, key: str, owner: str, ms: int) -> bool | None:
        """A short lease so one instance fills a cold key while the others wait briefly."""
        try:
            return bool(await self._call(self.redis.set(lease_key(key), owner, nx=True, px=ms)))
        except CacheUnavailableError:
            return None

    async def release_lease(self, key: str) -> None:
        try:
            await self._call(self.redis.delete(lease_key(key)))
        except CacheUnavailableError:
            return

    # ---------------------------------------------------------------- lists

    async def generation(self, gen_key: str) -> tuple[int, int] | None:
        """``(counter, lsn)`` of a list generation, or None when Redis is skipped."""
        try:
            raw = await self._call(self.redis.get(gen_key))
        except CacheUnavailableError:
            return None
        return parse_generation(raw, int(time.time() * 1000))

    async def get_list(self, family: str, key: str) -> tuple[bytes | None, CacheState]:
        try:
            raw = await self._call(self.redis.get(key))
        except CacheUnavailableError:
            CACHE_REQUESTS.labels(family, "bypass").inc()
            return None, "bypass"
        if raw is None:
            CACHE_REQUESTS.labels(family, "miss").inc()
            return None, "miss"
        CACHE_REQUESTS.labels(family, "hit").inc()
        return _as_bytes(raw), "hit"

    async def set_list(self, key: str, body: bytes, ttl_s: int) -> None:
        try:
            await self._call(self.redis.set(key, body, px=jittered_ms(ttl_s)))
        except CacheUnavailableError:
            return

"""``GET /products/{id}``, the hottest read: near cache → Redis → replica (lag-aware) → primary.

Read-your-writes: a reader whose token names this product at a newer version than a cached entry
or a replica row reads around them. Bodies are JSON encoded once, when read from the database,
and served as bytes from then on; fills are fenced (docs/adr/0003), cold keys single-flighted in
process and leased across instances.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import msgspec

from app.contracts.cache_keys import product_key
from app.contracts.policy import policy
from app.contracts.product import product_from_row
from app.contracts.ryw import RywToken
from app.core.db import ReadPool
from app.core.metrics import READ_SOURCE
from app.core.singleflight import SingleFlight
from app.core.sql import queries
from app.fastpath.display_cache import CacheState, DisplayCache
from app.fastpath.near_cache import NearCache
from app.fastpath.replica_router import ReadRouter, Route
from app.fastpath.views import View, database_view

Q = queries("catalog")
_encoder = msgspec.json.Encoder()

NEAR_HIT = READ_SOURCE.labels("product.get", "cache", "near")  # bound once: the hottest counter
# A cold product key: one instance takes a lease and fills; others wait this long for it.
LEASE_MS = 300
LEASE_WAIT_STEPS = (0.005, 0.01, 0.02)


@dataclass(frozen=True, slots=True)
class _Loaded:
    body: bytes | None
    version: int | None
    route: Route | None  # None when the body came from the cache after waiting on a lease


class ProductReads:
    """``GET /products/{id}``: the hottest read."""

    def __init__(self, router: ReadRouter, cache: DisplayCache, instance: str, near: NearCache | None = None) -> None:
        self.router = router
        self.cache = cache
        self.instance = instance
        self.near = near
        self.ttl_s = policy("product.get").cache_ttl_s or 300
        self._flights: SingleFlight[_Loaded] = SingleFlight()
        # Tests hold a fill between its database read and its cache write with this hook.
        self.before_fill: Callable[[int], Awaitable[None]] | None = None

    async def get_product(self, product_id: int, token: RywToken | None) -> View | None:
        """The product as displayed, or None when it does not exist (or is archived)."""
        wanted = token.version_of(product_id) if token is not None else None
        epoch = self.near.epoch if self.near is not None else 0
        if self.near is not None:
            near = self.near.get(product_id)
            if near is not None and (wanted is None or near.version >= wanted):
                NEAR_HIT.inc()
                return View(near.body, "cache", "hit", "near", near.version)
        entry, state = await self.cache.get_product(product_id)
        if entry is not None:
            if wanted is None or entry.version >= wanted:
                READ_SOURCE.labels("product.get", "cache", "hit").inc()
                if self.near is not None:
                    self.near.put(product_id, entry.version, entry.body, epoch)
                return View(entry.body, "cache", "hit", "hit", entry.version)
            state = "bypass"  # older than this user's own write
        if wanted is None:
            loaded, _shared = await self._flights.do(product_id, lambda: self._load(product_id, state, epoch))
        else:
            loaded = await self._load_for_writer(product_id, wanted, epoch)
        if loaded.route is None:  # another instance filled the cache while we waited on its lease
            READ_SOURCE.labels("product.get", "cache", "lease").inc()
            return None if loaded.body is None else View(loaded.body, "cache", "hit", "lease", loaded.version)
        view = database_view(loaded.body or b"", loaded.route, state, writer=wanted is not None, version=loaded.version)
        READ_SOURCE.labels("product.get", view.source, view.reason).inc()
        return None if loaded.body is None else view

    async def _read_row(self, product_id: int, *, primary: bool = False) -> tuple[asyncpg.Record | None, Route]:
        async def fetch(pool: ReadPool) -> asyncpg.Record | None:
            return await pool.fetchrow(Q["get_product"], product_id)

        if primary:
            return await self.router.run_on_primary("product.get", fetch)
        return await self.router.run("product.get", fetch)

    async def _load(self, product_id: int, state: CacheState, epoch: int) -> _Loaded:
        key = product_key(product_id)
        lease = await self.cache.take_lease(key, self.instance, LEASE_MS) if state == "miss" else None
        if lease is False:
            for pause in LEASE_WAIT_STEPS:
                await asyncio.sleep(pause)
                entry, _ = await self.cache.get_product(product_id)
                if entry is not None:
                    return _Loaded(entry.body, entry.version, None)
        try:
            row, route = await self._read_row(product_id)
            return await self._fill(product_id, row, route, epoch)
        finally:
            if lease:
                await self.cache.release_lease(key)

    async def _load_for_writer(self, product_id: int, wanted: int, epoch: int) -> _Loaded:
        # A replica row at or past the version this user wrote is fresh enough for them
        # (versions only grow); anything else, including "not there yet", goes to the primary.
        row, route = await self._read_row(product_id)
        if route.source == "replica" and (row is None or row["version"] < wanted):
            row, route = await self._read_row(product_id, primary=True)
        return await self._fill(product_id, row, route, epoch)

    async def _fill(self, product_id: int, row: asyncpg.Record | None, route: Route, epoch: int) -> _Loaded:
        if row is None:
            return _Loaded(None, None, route)
        body = _encoder.encode(product_from_row(row))
        if self.before_fill is not None:
            await self.before_fill(product_id)
        # Fenced: refused if the relay has already announced a newer version (stale-refill races).
        stored = await self.cache.fill_product(product_id, row["version"], body, self.ttl_s)
        if stored and self.near is not None:
            self.near.put(product_id, row["version"], body, epoch)
        return _Loaded(body, row["version"], route)

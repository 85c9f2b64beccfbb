"""Display reads: cache → replica (lag-aware) → primary, with read-your-writes for writers.

Bodies are JSON encoded once, when read from the database, and served as bytes from then on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg
import msgspec
import structlog

from app.catalog.reads.cache import CacheState, DisplayCache, digest, normalise_query
from app.catalog.reads.cursors import CategoryCursor, SearchCursor, decode_cursor, encode_cursor
from app.catalog.reads.near_cache import NearCache
from app.catalog.reads.routing import ReadRouter, Route
from app.catalog.schemas import ProductRead
from app.core.cache import GEN_SEARCH, GEN_TOP_SELLING, category_generation_key, product_key
from app.core.db import ReadPool
from app.core.metrics import READ_SOURCE, RECOMMENDATION_FAILURES
from app.core.policy import policy
from app.core.problems import Problem
from app.core.ryw import RywToken
from app.core.singleflight import SingleFlight
from app.core.sql import load_queries

Q = load_queries("catalog")
Source = Literal["cache", "replica", "primary", "none"]
log = structlog.get_logger("catalog.reads")
_encoder = msgspec.json.Encoder()

TOP_SELLING_DAYS = 30
_NEAR_HIT = READ_SOURCE.labels("product.get", "cache", "near")  # bound once: the hottest counter
# A cold product key: one instance takes a lease and fills; others wait this long for it.
LEASE_MS = 300
LEASE_WAIT_STEPS = (0.005, 0.01, 0.02)


@dataclass(frozen=True, slots=True)
class View:
    """A display response, ready to send: pre-encoded bytes and where they came from."""

    body: bytes
    source: Source
    cache: CacheState
    reason: str
    version: int | None = None


class ProductPage(msgspec.Struct):
    items: list[ProductRead]
    next_cursor: str | None


class SearchPage(msgspec.Struct):
    items: list[ProductRead]
    next_cursor: str | None
    mode: str


class Items(msgspec.Struct):
    items: list[ProductRead]


def _product(row: asyncpg.Record) -> ProductRead:
    return ProductRead(
        id=row["id"], sku=row["sku"], name=row["name"], description=row["description"],
        category_id=row["category_id"], price_cents=row["price_cents"], currency=row["currency"],
        inventory=row["inventory"], version=row["version"], updated_at=row["updated_at"],
    )  # fmt: skip


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
                _NEAR_HIT.inc()
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
        reason = "miss" if loaded.route.source == "replica" else loaded.route.reason
        if wanted is not None and loaded.route.source == "primary":
            reason = "ryw"
        READ_SOURCE.labels("product.get", loaded.route.source, reason).inc()
        if loaded.body is None:
            return None
        return View(loaded.body, loaded.route.source, state, reason, loaded.version)

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
        body = _encoder.encode(_product(row))
        if self.before_fill is not None:
            await self.before_fill(product_id)
        # Fenced: refused if the relay has already announced a newer version (stale-refill races).
        stored = await self.cache.fill_product(product_id, row["version"], body, self.ttl_s)
        if stored and self.near is not None:
            self.near.put(product_id, row["version"], body, epoch)
        return _Loaded(body, row["version"], route)


class ListReads:
    """Search, category pages, top sellers and recommendations: generation-versioned caches."""

    def __init__(self, router: ReadRouter, cache: DisplayCache) -> None:
        self.router = router
        self.cache = cache
        self._flights: SingleFlight[tuple[bytes, Route]] = SingleFlight()

    async def _cached(
        self,
        name: str,
        gen_key: str | None,
        key_suffix: str,
        token: RywToken | None,
        load: Callable[[int], Awaitable[tuple[bytes, Route]]],
    ) -> View:
        """Serve from ``<family>:<generation>:<suffix>``, or load (and store) on a miss.

        Without a generation key the entry lives for its TTL only (freshness class "minutes").

        A reader with a read-your-writes token skips the list cache (it may predate their write)
        and reads a replica only once it has replayed their commit.
        """
        endpoint = policy(name)
        family = (endpoint.cache_key or name).split(":", 1)[0]
        if token is not None and token.lsn:
            body, route = await load(token.lsn)
            reason = "ryw" if route.source == "primary" else "miss"
            READ_SOURCE.labels(name, route.source, reason).inc()
            return View(body, route.source, "bypass", reason)
        generation = await self.cache.generation(gen_key) if gen_key is not None else (0, 0)
        if generation is None:
            body, route = await load(0)
            READ_SOURCE.labels(name, route.source, "cache-down" if route.source == "replica" else route.reason).inc()
            return View(body, route.source, "bypass", route.reason)
        counter, generation_lsn = generation
        key = f"{family}:g{counter}:{key_suffix}" if gen_key is not None else f"{family}:{key_suffix}"
        cached, state = await self.cache.get_list(family, key)
        if cached is not None:
            READ_SOURCE.labels(name, "cache", "hit").inc()
            return View(cached, "cache", "hit", "hit")

        async def load_and_store() -> tuple[bytes, Route]:
            loaded = await load(0)
            # A replica that has not replayed up to the last invalidation may have served an old
            # list: send it, but do not store it under the new generation (stale-refill race).
            if loaded[1].has_replayed(generation_lsn):
                await self.cache.set_list(key, loaded[0], endpoint.cache_ttl_s or 30)
            return loaded

        (body, route), _shared = await self._flights.do(key, load_and_store)
        reason = "miss" if route.source == "replica" else route.reason
        READ_SOURCE.labels(name, route.source, reason).inc()
        return View(body, route.source, state, reason)

    async def category_page(self, category_id: int, limit: int, cursor: str | None, token: RywToken | None) -> View:
        after = 0
        if cursor:
            decoded = decode_cursor(cursor, CategoryCursor)
            assert isinstance(decoded, CategoryCursor)
            if decoded.category_id != category_id:
                raise Problem(400, "invalid_cursor", "cursor belongs to another category")
            after = decoded.last_id

        async def load(min_lsn: int) -> tuple[bytes, Route]:
            async def fetch(pool: ReadPool) -> tuple[list[asyncpg.Record], bool]:
                rows = await pool.fetch(Q["category_products"], category_id, after, limit + 1)
                exists = bool(rows) or await pool.fetchval(Q["category_exists_read"], category_id)
                return rows, exists

            (rows, exists), route = await self.router.run("category.products", fetch, min_lsn=min_lsn)
            if not exists:
                raise Problem(404, "category_not_found", f"category {category_id} does not exist")
            more = len(rows) > limit
            page = rows[:limit]
            next_cursor = encode_cursor(CategoryCursor(category_id, page[-1]["id"])) if more else None
            return _encoder.encode(ProductPage([_product(r) for r in page], next_cursor)), route

        return await self._cached(
            "category.products", category_generation_key(category_id), f"{category_id}:{limit}:{after}", token, load
        )

    async def search(self, q: str, limit: int, cursor: str | None, token: RywToken | None) -> View:
        text = normalise_query(q)
        if not text:
            raise Problem(400, "validation_error", "q must contain a search term", errors=[{"field": "q"}])
        query_digest = digest(text)
        start: SearchCursor | None = None
        if cursor:
            decoded = decode_cursor(cursor, SearchCursor)
            assert isinstance(decoded, SearchCursor)
            if decoded.query != query_digest or decoded.mode not in ("fulltext", "fuzzy"):
                raise Problem(400, "invalid_cursor", "cursor belongs to another search")
            start = decoded

        async def load(min_lsn: int) -> tuple[bytes, Route]:
            async def fetch(pool: ReadPool) -> tuple[list[asyncpg.Record], str]:
                rank, last_id = (start.rank, start.last_id) if start else (None, None)
                if start is None or start.mode == "fulltext":
                    rows = await pool.fetch(Q["search_fulltext"], text, rank, last_id, limit + 1)
                    if rows or start is not None:
                        return rows, "fulltext"
                    rank, last_id = None, None  # nothing matched the words: try for typos
                rows = await pool.fetch(Q["search_fuzzy"], text, rank, last_id, limit + 1)
                return rows, "fuzzy"

            (rows, mode), route = await self.router.run("search.products", fetch, min_lsn=min_lsn)
            more = len(rows) > limit
            page = rows[:limit]
            next_cursor = (
                encode_cursor(SearchCursor(mode, float(page[-1]["rank"]), page[-1]["id"], query_digest))
                if more
                else None
            )
            return _encoder.encode(SearchPage([_product(r) for r in page], next_cursor, mode)), route

        suffix = f"{query_digest}:{limit}:{digest(cursor) if cursor else '-'}"
        return await self._cached("search.products", GEN_SEARCH, suffix, token, load)

    async def top_selling(self, limit: int, token: RywToken | None) -> View:
        async def load(min_lsn: int) -> tuple[bytes, Route]:
            async def fetch(pool: ReadPool) -> list[asyncpg.Record]:
                return await pool.fetch(Q["top_selling"], limit, TOP_SELLING_DAYS)

            rows, route = await self.router.run("products.top_selling", fetch, min_lsn=min_lsn)
            return _encoder.encode(Items([_product(r) for r in rows])), route

        return await self._cached("products.top_selling", GEN_TOP_SELLING, str(limit), token, load)

    async def recommendations(self, product_id: int, limit: int, token: RywToken | None) -> View:
        """Co-purchased products, topped up with the category's best sellers. Never fails: [] instead."""

        async def load(min_lsn: int) -> tuple[bytes, Route]:
            async def fetch(pool: ReadPool) -> list[asyncpg.Record]:
                rows = list(await pool.fetch(Q["co_purchased"], product_id, limit))
                if len(rows) < limit:
                    seen = {r["id"] for r in rows}
                    extra = await pool.fetch(Q["category_best_sellers"], product_id, limit + len(rows))
                    rows += [r for r in extra if r["id"] not in seen][: limit - len(rows)]
                return rows

            rows, route = await self.router.run("recommendations", fetch, min_lsn=min_lsn)
            return _encoder.encode(Items([_product(r) for r in rows])), route

        try:
            return await self._cached("recommendations", None, f"{product_id}:{limit}", token, load)
        except Exception as exc:  # noqa: BLE001  (recommendations degrade, they never break the page)
            RECOMMENDATION_FAILURES.inc()
            log.warning("reads.recommendations_failed", product_id=product_id, error=f"{type(exc).__name__}: {exc}")
            READ_SOURCE.labels("recommendations", "none", "error").inc()
            return View(b'{"items":[]}', "none", "bypass", "error")

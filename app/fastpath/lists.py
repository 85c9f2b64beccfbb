"""Search, category pages, top sellers and recommendations: generation-versioned list caches.

A list key carries its generation (``category:g7:…``); the relay bumps generations after writes,
so a new generation starts empty and old entries age out by TTL. A list read from a replica that
has not replayed up to the generation's LSN is served but not stored (docs/adr/0004): the
stale-refill race for lists. Readers with a read-your-writes token skip the list cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import msgspec
import structlog

from app.contracts.cache_keys import GEN_SEARCH, GEN_TOP_SELLING, category_generation_key, list_key
from app.contracts.policy import policy
from app.contracts.product import product_from_row
from app.contracts.ryw import RywToken
from app.core.db import ReadPool
from app.core.metrics import READ_SOURCE, RECOMMENDATION_FAILURES
from app.core.problems import Problem
from app.core.singleflight import SingleFlight
from app.core.sql import queries
from app.fastpath.cursors import CategoryCursor, SearchCursor, decode_cursor, encode_cursor
from app.fastpath.display_cache import CacheState
from app.fastpath.replica_router import Route
from app.fastpath.views import Items, ProductPage, SearchPage, View, database_view

Q = queries("catalog")
log = structlog.get_logger("catalog.reads")
_encoder = msgspec.json.Encoder()

TOP_SELLING_DAYS = 30
T = TypeVar("T")
Fetch = Callable[[ReadPool], Awaitable[bytes]]


class ListStore(Protocol):
    """What list reads need of the display cache (an in-memory fake stands in for unit tests)."""

    async def generation(self, gen_key: str) -> tuple[int, int] | None: ...
    async def get_list(self, family: str, key: str) -> tuple[bytes | None, CacheState]: ...
    async def set_list(self, key: str, body: bytes, ttl_s: int) -> None: ...


class Router(Protocol):
    """What list reads need of the replica router."""

    async def run(
        self, endpoint: str, work: Callable[[ReadPool], Awaitable[T]], *, min_lsn: int = 0
    ) -> tuple[T, Route]: ...


def normalise_query(q: str) -> str:
    """Search text as cached and searched: case-folded, single-spaced."""
    return " ".join(q.casefold().split())


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def may_store_list(route: Route, generation_lsn: int) -> bool:
    """Store a list only if its rows include every change the generation covers.

    A replica that has not replayed up to the last invalidation may have served an old list:
    it is sent, but storing it under the new generation would bring the old list back.
    """
    return route.has_replayed(generation_lsn)


class ListReads:
    """Search, category pages, top sellers and recommendations."""

    def __init__(self, router: Router, cache: ListStore) -> None:
        self.router = router
        self.cache = cache
        self._flights: SingleFlight[tuple[bytes, Route]] = SingleFlight()

    async def _cached(
        self, name: str, gen_key: str | None, key_suffix: str, token: RywToken | None, fetch: Fetch
    ) -> View:
        """Serve from ``<family>:g<generation>:<suffix>``, or fetch (and store) on a miss.

        Without a generation key the entry lives for its TTL only (freshness class "minutes").
        A reader with a read-your-writes token skips the list cache (it may predate their write)
        and reads a replica only once it has replayed their commit.
        """
        endpoint = policy(name)
        family = (endpoint.cache_key or name).split(":", 1)[0]
        if token is not None and token.lsn:
            body, route = await self.router.run(name, fetch, min_lsn=token.lsn)
            view = database_view(body, route, "bypass", writer=True)
            READ_SOURCE.labels(name, view.source, view.reason).inc()
            return view
        generation = await self.cache.generation(gen_key) if gen_key is not None else (0, 0)
        if generation is None:
            body, route = await self.router.run(name, fetch)
            view = database_view(body, route, "bypass")
            READ_SOURCE.labels(name, view.source, "cache-down" if view.reason == "miss" else view.reason).inc()
            return view
        counter, generation_lsn = generation
        key = list_key(family, counter if gen_key is not None else None, key_suffix)
        cached, state = await self.cache.get_list(family, key)
        if cached is not None:
            READ_SOURCE.labels(name, "cache", "hit").inc()
            return View(cached, "cache", "hit", "hit")

        async def fetch_and_store() -> tuple[bytes, Route]:
            body, route = await self.router.run(name, fetch)
            if may_store_list(route, generation_lsn):
                await self.cache.set_list(key, body, endpoint.cache_ttl_s or 30)
            return body, route

        (body, route), _shared = await self._flights.do(key, fetch_and_store)
        view = database_view(body, route, state)
        READ_SOURCE.labels(name, view.source, view.reason).inc()
        return view

    async def category_page(self, category_id: int, limit: int, cursor: str | None, token: RywToken | None) -> View:
        after = 0
        if cursor:
            decoded = decode_cursor(cursor, CategoryCursor)
            assert isinstance(decoded, CategoryCursor)
            if decoded.category_id != category_id:
                raise Problem(400, "invalid_cursor", "cursor belongs to another category")
            after = decoded.last_id

        async def fetch(pool: ReadPool) -> bytes:
            rows = await pool.fetch(Q["category_products"], category_id, after, limit + 1)
            if not rows and not await pool.fetchval(Q["category_exists_read"], category_id):
                raise Problem(404, "category_not_found", f"category {category_id} does not exist")
            page = rows[:limit]
            next_cursor = encode_cursor(CategoryCursor(category_id, page[-1]["id"])) if len(rows) > limit else None
            return _encoder.encode(ProductPage([product_from_row(r) for r in page], next_cursor))

        suffix = f"{category_id}:{limit}:{after}"
        return await self._cached("category.products", category_generation_key(category_id), suffix, token, fetch)

    async def search(self, q: str, limit: int, cursor: str | None, token: RywToken | None) -> View:
        text = normalise_query(q)
        if not text:
            raise Problem(
                400,
                "validation_error",
                "invalid q: must contain a search term",
                errors=[{"field": "q", "message": "must contain a search term", "source": "query"}],
            )
        query_digest = digest(text)
        start: SearchCursor | None = None
        if cursor:
            decoded = decode_cursor(cursor, SearchCursor)
            assert isinstance(decoded, SearchCursor)
            if decoded.query != query_digest or decoded.mode not in ("fulltext", "fuzzy"):
                raise Problem(400, "invalid_cursor", "cursor belongs to another search")
            start = decoded

        async def fetch(pool: ReadPool) -> bytes:
            # One statement: full text, and only when a first page finds nothing, the typo fallback.
            rank, last_id, cursor_mode = (start.rank, start.last_id, start.mode) if start else (None, None, None)
            rows = await pool.fetch(Q["search_products"], text, rank, last_id, limit + 1, cursor_mode)
            mode = rows[0]["mode"] if rows else (cursor_mode or "fuzzy")
            page = rows[:limit]
            next_cursor = (
                encode_cursor(SearchCursor(mode, float(page[-1]["rank"]), page[-1]["id"], query_digest))
                if len(rows) > limit
                else None
            )
            return _encoder.encode(SearchPage([product_from_row(r) for r in page], next_cursor, mode))

        suffix = f"{query_digest}:{limit}:{digest(cursor) if cursor else '-'}"
        return await self._cached("search.products", GEN_SEARCH, suffix, token, fetch)

    async def top_selling(self, limit: int, token: RywToken | None) -> View:
        async def fetch(pool: ReadPool) -> bytes:
            rows = await pool.fetch(Q["top_selling"], limit, TOP_SELLING_DAYS)
            return _encoder.encode(Items([product_from_row(r) for r in rows]))

        return await self._cached("products.top_selling", GEN_TOP_SELLING, str(limit), token, fetch)

    async def recommendations(self, product_id: int, limit: int, token: RywToken | None) -> View:
        """Co-purchased products, topped up with the category's best sellers. Never fails: [] instead."""

        async def fetch(pool: ReadPool) -> bytes:
            rows = list(await pool.fetch(Q["co_purchased"], product_id, limit))
            if len(rows) < limit:
                seen = {r["id"] for r in rows}
                extra = await pool.fetch(Q["category_best_sellers"], product_id, limit + len(rows))
                rows += [r for r in extra if r["id"] not in seen][: limit - len(rows)]
            return _encoder.encode(Items([product_from_row(r) for r in rows]))

        try:
            return await self._cached("recommendations", None, f"{product_id}:{limit}", token, fetch)
        except Exception as exc:  # noqa: BLE001  (recommendations degrade, they never break the page)
            RECOMMENDATION_FAILURES.inc()
            log.warning("reads.recommendations_failed", product_id=product_id, error=f"{type(exc).__name__}: {exc}")
            READ_SOURCE.labels("recommendations", "none", "error").inc()
            return View(b'{"items":[]}', "none", "bypass", "error")

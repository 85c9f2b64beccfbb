"""Refresh after invalidate: the products a batch changed are read back and offered to the cache.

Under the load mix, most product-page misses once the cache is warm are not the long tail: they
are the first read after an invalidation (a checkout changing the stock of a popular product, an
admin edit). The relay has just fenced and deleted those keys; it reads the changed rows from the
primary, after its batch committed, and fills them with the same fenced fill-if-newer a reader
uses (docs/adr/0003), so the next reader hits the new version instead of missing.

It is best effort and bounded: only batches of at most ``max_products`` products are refreshed
(a backlog drains at full speed, its products are read on demand), and of those only the products
whose entry was in the cache when the batch deleted it: a product nobody read within its TTL is
not worth a primary read per write (a burst of admin edits across the catalog would be one read
per edit, for entries no one asks for). A failure only means
those products miss once, as they would without it. Correctness never depends on it: the fence
refuses a row older than an invalidation already applied, and the next event deletes again.
"""

from __future__ import annotations

import random

import asyncpg
import msgspec
import structlog

from app.contracts.cache_keys import encode_entry, fence_key, product_key
from app.contracts.cache_scripts import CacheScripts, ScriptCall
from app.contracts.policy import policy
from app.contracts.product import product_from_row
from app.core.metrics import CACHE_REQUESTS
from app.core.redis import REDIS_ERRORS
from app.core.sql import queries

Q = queries("catalog")
log = structlog.get_logger("catalog.relay")
_FAILURES: tuple[type[BaseException], ...] = (*REDIS_ERRORS, asyncpg.PostgresError)
_encoder = msgspec.json.Encoder()
_TTL_S = policy("product.get").cache_ttl_s or 300


async def refresh_products(
    conn: asyncpg.Connection[asyncpg.Record], scripts: CacheScripts, versions: dict[int, int]
) -> int:
    """Fill the current rows of ``versions``' products (archived ones stay out); how many were stored."""
    rows = await conn.fetch(Q["get_products"], list(versions))
    if not rows:
        return 0
    calls: list[ScriptCall] = []
    for row in rows:
        version = row["version"]
        body = _encoder.encode(product_from_row(row))
        ttl_ms = int(_TTL_S * 1000 * random.uniform(0.9, 1.1))
        calls.append(
            (
                scripts.fill_if_newer_script,
                [product_key(row["id"]), fence_key(row["id"])],
                [version, encode_entry(version, body), ttl_ms],
            )
        )
    stored = sum(1 for result in await scripts.run_pipelined(calls) if result)
    CACHE_REQUESTS.labels("product", "refresh").inc(stored)
    if stored < len(rows):
        CACHE_REQUESTS.labels("product", "refresh-refused").inc(len(rows) - stored)
    return stored


async def refresh_best_effort(
    conn: asyncpg.Connection[asyncpg.Record], scripts: CacheScripts, versions: dict[int, int], *, relay: str
) -> None:
    """:func:`refresh_products` for a relay's batch: a failure is logged and costs misses only."""
    try:
        if versions:
            await refresh_products(conn, scripts, versions)
    except _FAILURES as exc:
        log.warning("relay.refresh_failed", relay=relay, products=len(versions), error=repr(exc)[:300])

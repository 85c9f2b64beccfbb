"""Refresh after invalidate: the next reader of a changed product hits the new version.

Without the refresh, the first read after every write or checkout of a product misses (the relay
deleted the key) and goes to a replica: under the load mix that was most of the product misses
once the cache had warmed up (README, "Figures").
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.contracts.cache_keys import decode_entry, fence_key, product_key
from app.contracts.cache_scripts import CacheScripts
from app.invalidation.refresh import refresh_products
from app.main import runtime_of
from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.waiting import until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("refresh", [True, False], ids=["refresh-on", "refresh-off"])
async def test_the_read_after_a_write_is_a_cache_hit_of_the_new_version(
    db: ScratchDatabase, admin_headers: dict[str, str], redis_client: aioredis.Redis, refresh: bool
) -> None:
    settings = db.settings(
        relay_enabled=True, relay_refresh_max_products=200 if refresh else 0, near_cache_enabled=False
    )
    async with running_app(settings) as (app, client):
        assert (await client.get("/products/31")).status_code == 200  # cached at its current version
        written = await client.patch("/products/31", json={"price_cents": 4321}, headers=admin_headers)
        version = written.json()["version"]

        async def applied() -> bool:
            fence = await redis_client.get(fence_key(31))
            return fence is not None and int(fence) >= version

        await until(applied)
        await asyncio.sleep(0.05)  # the refresh follows the batch's commit
        # Another visitor (no read-your-writes cookie) reads the product.
        client.cookies.clear()
        response = await client.get("/products/31")
        if refresh:
            assert (response.headers["x-read-source"], response.headers["x-cache"]) == ("cache", "hit")
            assert response.json()["price_cents"] == 4321, "the relay put the new version back"
            assert response.headers["etag"] == f'"{version}"'
        else:
            # (From a replica within the lag bound: the new version, or the old one for a moment.)
            assert response.headers["x-cache"] == "miss", "without the refresh, the first read after a write misses"
        assert runtime_of(app).relay is not None


async def test_a_refresh_never_puts_back_a_version_older_than_the_fence(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    """The row read back is fenced like any fill: if a newer version was already invalidated
    (another relay's batch), an older row is refused, and a newer cached entry is kept."""
    scripts = CacheScripts(redis_client)
    current = await primary.fetchval("SELECT version FROM products WHERE id = 41")
    await redis_client.set(fence_key(41), current + 5)
    relay_conn = await asyncpg.connect(db.settings().db.primary_dsn)
    try:
        assert await refresh_products(relay_conn, scripts, {41: current}) == 0
        assert await redis_client.get(product_key(41)) is None
        await redis_client.delete(fence_key(41))
        await redis_client.set(product_key(41), b"%d|{}" % (current + 2))
        assert await refresh_products(relay_conn, scripts, {41: current}) == 0
        assert decode_entry(await redis_client.get(product_key(41)))[0] == current + 2
        await redis_client.delete(product_key(41))
        assert await refresh_products(relay_conn, scripts, {41: current}) == 1
        assert decode_entry(await redis_client.get(product_key(41)))[0] == current
        # Archived products are not displayed, so they are not put back either.
        await primary.execute("UPDATE products SET archived = true WHERE id = 42")
        assert await refresh_products(relay_conn, scripts, {42: 1}) == 0
    finally:
        await relay_conn.close()


async def test_only_products_a_reader_had_cached_are_read_back(
    db: ScratchDatabase, admin_headers: dict[str, str], redis_client: aioredis.Redis
) -> None:
    """A write to a product nobody had cached costs no primary read: its key stays absent until a
    reader asks. A write to a cached one is refreshed, as above."""
    settings = db.settings(relay_enabled=True, relay_refresh_max_products=200, near_cache_enabled=False)
    async with running_app(settings) as (_app, client):
        assert (await client.get("/products/33")).status_code == 200  # cached; 34 never read
        versions = {}
        for product in (33, 34):
            written = await client.patch(f"/products/{product}", json={"price_cents": 1234}, headers=admin_headers)
            versions[product] = written.json()["version"]

        async def applied() -> bool:
            fences = [await redis_client.get(fence_key(p)) for p in versions]
            return all(f is not None and int(f) >= versions[p] for f, p in zip(fences, versions, strict=True))

        async def refreshed() -> bool:
            entry = await redis_client.get(product_key(33))
            return entry is not None and decode_entry(entry)[0] == versions[33]

        await until(applied)
        await until(refreshed)  # the cached product is put back at its new version
        await asyncio.sleep(0.2)  # well past the refresh that follows the batch
        assert await redis_client.get(product_key(34)) is None, "an uncached product was read back for nobody"

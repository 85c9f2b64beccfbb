"""The fast path: cache, lag-aware replicas, read-your-writes, and the races that must stay closed.

Every race is first reproduced deterministically against a plain cache-aside fill (what the
design replaces), then run through the service to show it closed.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from litestar import Litestar

from app.contracts.cache_keys import decode_entry, encode_entry, fence_key, product_key
from app.contracts.ryw import RywCookies
from app.fastpath.products import ProductReads
from app.main import runtime_of
from devtools.stack import free_port
from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.faults import TcpProxy
from tests.fixtures.stack import replay_paused, wait_for_replica
from tests.fixtures.waiting import until

pytestmark = pytest.mark.integration


def _relay_settings(db: ScratchDatabase, **extra: object):  # type: ignore[no-untyped-def]
    # A paused replica must stay in rotation for these tests: lag bound well above their runtime.
    # The relay's refresh is off: these tests exercise a reader's fill after an invalidation, and
    # readers still fill whenever the refresh is skipped (a large batch) or fails.
    return db.settings(
        relay_enabled=True,
        relay_refresh_max_products=0,
        relay_poll_interval_s=0.2,
        replica_max_lag_ms=20_000,
        cache_list_generation_interval_s=0,
        **extra,
    )


async def _fence_reaches(redis: aioredis.Redis, product_id: int, version: int, app: Litestar | None = None) -> None:
    """The relay has invalidated ``version``: in Redis, and (given the app) in its near cache."""

    async def fenced() -> bool:
        raw = await redis.get(fence_key(product_id))
        if raw is None or int(raw) < version:
            return False
        near = runtime_of(app).near_cache if app is not None else None
        entry = near.get(product_id) if near is not None else None
        return entry is None or entry.version >= version

    await until(fenced)


def _metric(app: Litestar, name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


# ---------------------------------------------------------------------------------------- RYW


async def test_read_your_writes_while_the_replica_lags(
    db: ScratchDatabase, admin_headers: dict[str, str], redis_client: aioredis.Redis
) -> None:
    async with running_app(_relay_settings(db)) as (app, writer):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as anonymous:
            before = (await anonymous.get("/products/21")).json()
            old_category = before["category_id"]
            new_category = old_category % 8 + 1
            assert (await anonymous.get(f"/categories/{new_category}/products?limit=100")).status_code == 200

            async with replay_paused(db.stack):
                response = await writer.patch(
                    "/products/21",
                    json={"name": "Quokkawood Lantern", "category_id": new_category},
                    headers=admin_headers,
                )
                assert response.status_code == 200
                version = response.json()["version"]
                await _fence_reaches(redis_client, 21, version, app)  # the relay has invalidated

                # Everyone else reads the replica, which has not replayed it yet.
                theirs = await anonymous.get("/products/21")
                assert theirs.headers["x-read-source"] == "replica"
                assert theirs.json()["name"] == before["name"]
                their_page = await anonymous.get(f"/categories/{new_category}/products?limit=100")
                assert their_page.headers["x-read-source"] == "replica"
                assert 21 not in [p["id"] for p in their_page.json()["items"]]
                their_search = await anonymous.get("/search/products?q=quokkawood")
                assert 21 not in [p["id"] for p in their_search.json()["items"]]
                # ... and none of those stale answers was cached (fence, generation LSN).
                assert await redis_client.get(product_key(21)) is None

                # The writer sees their write at once, on every display read (from the primary:
                # the replica has not replayed it). That read may fill the cache with the new version.
                mine = await writer.get("/products/21")
                assert mine.json()["name"] == "Quokkawood Lantern"
                assert mine.headers["x-read-source"] == "primary"
                assert mine.headers["cache-control"] == "private, no-cache"
                page = (await writer.get(f"/categories/{new_category}/products?limit=100")).json()
                assert 21 in [p["id"] for p in page["items"]]
                found = (await writer.get("/search/products?q=quokkawood")).json()
                assert [p["id"] for p in found["items"]] == [21]

            await wait_for_replica(db.stack)
            await asyncio.sleep(0.25)  # one monitor poll
            for client in (writer, anonymous):
                assert (await client.get("/products/21")).json()["name"] == "Quokkawood Lantern"
                page = (await client.get(f"/categories/{new_category}/products?limit=100")).json()
                assert 21 in [p["id"] for p in page["items"]]
                found = (await client.get("/search/products?q=quokkawood")).json()
                assert [p["id"] for p in found["items"]] == [21]
            cached = await redis_client.get(product_key(21))
            assert cached is not None
            assert decode_entry(cached)[0] == version


async def test_tampered_and_expired_cookies_are_ignored_and_counted(
    db: ScratchDatabase, admin_headers: dict[str, str]
) -> None:
    async with running_app(_relay_settings(db)) as (app, client):
        settings = runtime_of(app).settings
        written = await client.patch("/products/3", json={"name": "Signed"}, headers=admin_headers)
        token = written.cookies[settings.ryw.cookie_name]
        payload, signature = token.split(".")
        before_bad = _metric(app, "catalog_ryw_tokens_ignored_total", reason="bad_signature")
        before_expired = _metric(app, "catalog_ryw_tokens_ignored_total", reason="expired")
        forged = f"{payload[:-2]}AA.{signature}"
        client.cookies.clear()
        client.cookies.set(settings.ryw.cookie_name, forged)
        response = await client.get("/products/3")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"  # treated as anonymous
        codec = RywCookies(settings.ryw).codec
        expired = codec.encode(codec.after_write(None, lsn=1, writes=[(3, 99)], now=time.time() - 3600))
        client.cookies.set(settings.ryw.cookie_name, expired)
        response = await client.get("/products/3")
        assert response.status_code == 200
        assert _metric(app, "catalog_ryw_tokens_ignored_total", reason="bad_signature") == before_bad + 1
        assert _metric(app, "catalog_ryw_tokens_ignored_total", reason="expired") == before_expired + 1


# ------------------------------------------------------------------------------ stale refills


async def test_race_1_slow_fill_after_a_newer_commit_is_refused(
    db: ScratchDatabase, admin_headers: dict[str, str], redis_client: aioredis.Redis
) -> None:
    """A reader misses and reads v1; a writer commits v2 and the relay invalidates; the reader fills."""
    async with running_app(_relay_settings(db)) as (app, client):
        reads: ProductReads = runtime_of(app).product_reads
        read_done, release = asyncio.Event(), asyncio.Event()

        async def hold(_: int) -> None:
            read_done.set()
            await release.wait()

        # 1. Reproduce it with a plain cache-aside fill (SET after the read): the old row sticks.
        reads.before_fill = hold
        reader = asyncio.create_task(client.get("/products/31"))
        await read_done.wait()
        old = await asyncpg.connect(db.primary_dsn)
        try:
            stale_version = await old.fetchval("SELECT version FROM products WHERE id = 31")
        finally:
            await old.close()
        write = await client.patch("/products/31", json={"price_cents": 111}, headers=admin_headers)
        new_version = write.json()["version"]
        await _fence_reaches(redis_client, 31, new_version, app)
        await redis_client.set(product_key(31), encode_entry(stale_version, b'{"naive":true}'))  # naive SET
        assert decode_entry(await redis_client.get(product_key(31)))[0] < new_version, "race reproduced"
        release.set()
        assert (await reader).status_code == 200
        await redis_client.delete(product_key(31))

        # 2. The same interleaving through the service: the fenced fill refuses the old row.
        read_done.clear()
        release.clear()
        reader = asyncio.create_task(client.get("/products/32"))
        await read_done.wait()
        write = await client.patch("/products/32", json={"price_cents": 222}, headers=admin_headers)
        new_version = write.json()["version"]
        await _fence_reaches(redis_client, 32, new_version, app)
        release.set()
        served = await reader
        assert served.json()["version"] == new_version - 1  # it read before the write: fine to serve
        assert await redis_client.get(product_key(32)) is None, "the stale fill must not land"
        reads.before_fill = None
        fresh = await client.get("/products/32")
        assert fresh.json()["version"] == new_version
        assert decode_entry(await redis_client.get(product_key(32)))[0] == new_version


async def test_race_2_lagging_replica_read_after_invalidation_is_not_cached(
    db: ScratchDatabase, admin_headers: dict[str, str], redis_client: aioredis.Redis
) -> None:
    """The relay invalidates at commit; a reader then misses, reads a lagging replica, and fills."""
    async with running_app(_relay_settings(db)) as (app, writer):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as anonymous:
            async with replay_paused(db.stack):
                write = await writer.patch("/products/41", json={"price_cents": 4141}, headers=admin_headers)
                new_version = write.json()["version"]
                await _fence_reaches(redis_client, 41, new_version, app)

                # 1. Reproduce: the replica still has the old row; a plain SET-on-miss would cache it.
                replica = await asyncpg.connect(db.replica_dsn)
                try:
                    old_version = await replica.fetchval("SELECT version FROM products WHERE id = 41")
                finally:
                    await replica.close()
                assert old_version == new_version - 1, "the replica is behind: the race is set up"

                # 2. Through the service: the old row is served to this reader but not cached.
                response = await anonymous.get("/products/41")
                assert response.headers["x-read-source"] == "replica"
                assert response.json()["version"] == old_version
                assert await redis_client.get(product_key(41)) is None
                again = await anonymous.get("/products/41")
                assert again.headers["x-read-source"] == "replica", "still a miss, never a stale hit"

            await wait_for_replica(db.stack)
            response = await anonymous.get("/products/41")
            assert response.json()["version"] == new_version
            assert decode_entry(await redis_client.get(product_key(41)))[0] == new_version
            assert (await anonymous.get("/products/41")).headers["x-read-source"] == "cache"


# ----------------------------------------------------------------------------- faults: Redis


async def test_redis_unreachable_reads_go_around_it_and_nothing_stale_remains(
    db: ScratchDatabase,
    stack,
    admin_headers: dict[str, str],
    redis_client: aioredis.Redis,  # type: ignore[no-untyped-def]
) -> None:
    proxy = TcpProxy(target_port=stack.config.redis_port, listen_port=free_port())
    await proxy.start()
    try:
        settings = _relay_settings(db, redis_url=f"redis://127.0.0.1:{proxy.port}/1")
        async with running_app(settings) as (_app, client):
            for pid in range(50, 60):
                assert (await client.get(f"/products/{pid}")).headers["x-read-source"] == "replica"
            assert (await client.get("/products/50")).headers["x-read-source"] == "cache"

            await proxy.cut()  # Redis unreachable
            assert (await client.get("/products/50")).headers["x-cache"] == "hit", "the near cache still serves"
            for pid in range(60, 70):  # not in the near cache: Redis would be asked
                response = await client.get(f"/products/{pid}")
                assert response.status_code == 200
                assert response.headers["x-cache"] == "bypass"
                assert response.json()["id"] == pid
            for path in ("/search/products?q=lamp", "/categories/1/products", "/products/top-selling"):
                response = await client.get(path)
                assert response.status_code == 200
                assert response.json()["items"], path
            # (How long a read may take while Redis misbehaves: the paused-Redis test below.)
            # Writes while Redis is away: committed, invalidation waits in the outbox.
            for pid in range(50, 55):
                patched = await client.patch(f"/products/{pid}", json={"price_cents": 5050}, headers=admin_headers)
                assert patched.status_code == 200
            await proxy.restore()

            async def drained() -> bool:
                conn = await asyncpg.connect(db.primary_dsn)
                try:
                    return not await conn.fetchval("SELECT count(*) FROM outbox")
                finally:
                    await conn.close()

            await until(drained, within_s=10)
            await wait_for_replica(db.stack)  # a miss reads the replica: it must have the writes
            await asyncio.sleep(1.1)  # breaker cooldown: the cache is used again
            for pid in range(50, 60):
                response = await client.get(f"/products/{pid}")
                assert response.status_code == 200
                if pid < 55:
                    assert response.json()["price_cents"] == 5050, "no stale entry survived the outage"
    finally:
        await proxy.close()


async def test_paused_redis_costs_one_timeout_then_the_breaker_skips_it(
    db: ScratchDatabase, redis_client: aioredis.Redis
) -> None:
    # Timeouts scaled up from the defaults and a breaker that stays open for the whole test, so
    # each mechanism's effect is far larger than any scheduling noise.
    settings = _relay_settings(db, redis_socket_timeout_ms=250, redis_breaker_cooldown_s=60)
    ceiling_s = 2 * settings.redis.socket_timeout_ms / 1000  # the display cache's limit per Redis call
    pause_s = 4.0  # 8x the ceiling; under the test client's 5 s timeout (UNPAUSE may wait for the pause)
    async with running_app(settings) as (_app, client):
        await client.get("/products/70")
        await redis_client.execute_command("CLIENT", "PAUSE", str(int(pause_s * 1000)), "ALL")
        try:
            timings = []
            for pid in (70, 71, 72, 73, 74):
                started = time.perf_counter()
                assert (await client.get(f"/products/{pid}")).status_code == 200
                timings.append(time.perf_counter() - started)
        finally:
            await redis_client.execute_command("CLIENT", "UNPAUSE")
    print(f"\nreads while Redis is paused: {[round(t * 1000) for t in timings]} ms")
    # No read waits for the pause to end: the one that meets the paused Redis gives up at the ceiling.
    assert max(timings) < pause_s / 2, timings
    # After that failure the breaker skips Redis: the other reads together take less than one
    # timed-out call (without the breaker each of them would pay at least one).
    assert sum(timings) - max(timings) < ceiling_s, timings


# ------------------------------------------------------------------------ faults: replicas


async def test_lagging_replica_leaves_rotation_and_returns(db: ScratchDatabase, admin_headers: dict[str, str]) -> None:
    settings = db.settings(replica_max_lag_ms=300, relay_enabled=True)
    async with running_app(settings) as (app, client):
        router = runtime_of(app).router
        [replica] = router.replicas

        async def past_the_bound() -> bool:  # as the app's replica monitor last saw it
            return replica.healthy(time.monotonic()) and replica.lag_s > router.max_lag_s

        async def within_the_bound() -> bool:
            return replica.healthy(time.monotonic()) and replica.lag_s <= router.max_lag_s

        assert (await client.get("/products/80")).headers["x-read-source"] == "replica"
        before = _metric(app, "catalog_read_source_total", route="product.get", source="primary", reason="lag")
        async with replay_paused(db.stack):
            written = await client.patch("/products/99", json={"name": "moves the primary on"}, headers=admin_headers)
            assert written.status_code == 200
            client.cookies.clear()
            await until(past_the_bound, within_s=10)  # 300 ms of lag, as sampled by the monitor
            response = await client.get("/products/81")
            assert response.status_code == 200
            assert response.headers["x-read-source"] == "primary"
            paused = (await client.get("/readyz")).json()["replicas"]["replica-1"]
            assert (paused["replay_paused"], paused["eligible"]) == (True, False)
        after = _metric(app, "catalog_read_source_total", route="product.get", source="primary", reason="lag")
        assert after == before + 1
        await wait_for_replica(db.stack)
        await until(within_the_bound, within_s=10)
        assert (await client.get("/products/82")).headers["x-read-source"] == "replica"


async def test_replica_down_reads_go_to_primary_with_the_reason(db: ScratchDatabase) -> None:
    settings = db.settings(replica_dsns=("postgresql://catalog_app@127.0.0.1:1/nowhere",))
    async with running_app(settings) as (app, client):
        before = _metric(app, "catalog_read_source_total", route="product.get", source="primary", reason="replica-down")
        assert (await client.get("/products/83")).headers["x-read-source"] == "primary"
        after = _metric(app, "catalog_read_source_total", route="product.get", source="primary", reason="replica-down")
        assert after == before + 1


# ------------------------------------------------------------------------------- stampede


async def test_stampede_on_a_cold_key_reads_the_database_a_handful_of_times(db: ScratchDatabase) -> None:
    async with running_app(db.settings()) as (_app, client):

        def db_reads() -> float:
            return sum(
                _metric(_app, "catalog_db_query_seconds_count", pool=pool, query="product.get")
                for pool in ("replica", "primary-read")
            )

        before = db_reads()
        responses = await asyncio.gather(*(client.get("/products/90") for _ in range(200)))
        assert all(r.status_code == 200 for r in responses)
        assert len({r.content for r in responses}) == 1
        reads = db_reads() - before
        print(f"\n200 concurrent cold reads -> {reads:.0f} database read(s)")
        assert 1 <= reads <= 3


# ---------------------------------------------------------------------- HTTP caching & lists


async def test_etag_and_if_none_match(client: httpx.AsyncClient) -> None:
    first = await client.get("/products/5")
    etag = first.headers["etag"]
    again = await client.get("/products/5", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get("/products/5", headers={"If-None-Match": '"999"'})
    assert other.status_code == 200
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["vary"] == "Cookie"


async def test_search_ranks_pages_and_survives_typos(
    db: ScratchDatabase, client: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    await primary.execute("UPDATE products SET name = 'Walnut Walnut Desk Lamp' WHERE id = 7")
    await wait_for_replica(db.stack)
    first = await client.get("/search/products", params={"q": "  Walnut   LAMP ", "limit": 3})
    assert first.status_code == 200
    body = first.json()
    assert body["mode"] == "fulltext"
    assert len(body["items"]) <= 3
    seen = [p["id"] for p in body["items"]]
    cursor = body["next_cursor"]
    while cursor:
        page = (await client.get("/search/products", params={"q": "walnut lamp", "limit": 3, "cursor": cursor})).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
    expected = await primary.fetchval(
        "SELECT count(*) FROM products WHERE search_vector @@ websearch_to_tsquery('english', 'walnut lamp')"
    )
    assert len(seen) == len(set(seen)) == expected
    fuzzy = (await client.get("/search/products", params={"q": "wallnut"})).json()
    assert fuzzy["mode"] == "fuzzy"
    assert fuzzy["items"], "trigram fallback finds Walnut"
    # The normalised query shares one cache entry.
    a = await client.get("/search/products", params={"q": "Walnut Lamp"})
    b = await client.get("/search/products", params={"q": "walnut   lamp"})
    assert b.headers["x-cache"] == "hit"
    assert a.content == b.content


async def test_typos_find_words_new_to_the_catalog_and_page_like_full_text(
    db: ScratchDatabase, client: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    # The typo lexicon follows inserts and renames (triggers): words no seeded name has.
    for n in range(5):
        await primary.execute(
            "INSERT INTO products (sku, name, category_id, price_cents) VALUES ($1, $2, 1, 999)",
            f"QW-{n}",
            f"Quokkawood Kettle {n}",
        )
    await primary.execute("UPDATE products SET name = 'Zanzibarine Desk Lamp' WHERE id = 9")
    await primary.execute("UPDATE products SET inventory = inventory + 1 WHERE id = 10")  # no rename: no words
    await wait_for_replica(db.stack)
    renamed = (await client.get("/search/products", params={"q": "zanzbarine"})).json()
    assert renamed["mode"] == "fuzzy"
    assert [p["id"] for p in renamed["items"]] == [9]
    # Exact words still win: the same word spelt right is a full-text match.
    assert (await client.get("/search/products", params={"q": "zanzibarine"})).json()["mode"] == "fulltext"
    # The fallback pages with its own keyset until its candidates run out, no product twice.
    page = (await client.get("/search/products", params={"q": "quokawood", "limit": 2})).json()
    assert page["mode"] == "fuzzy"
    seen = [p["id"] for p in page["items"]]
    while page["next_cursor"]:
        page = (
            await client.get("/search/products", params={"q": "quokawood", "limit": 2, "cursor": page["next_cursor"]})
        ).json()
        assert page["mode"] == "fuzzy"
        seen += [p["id"] for p in page["items"]]
    names = await primary.fetch("SELECT id FROM products WHERE name LIKE 'Quokkawood%'")
    assert sorted(seen) == sorted(r["id"] for r in names)
    # Nothing like any known word: no results, not an error.
    nothing = (await client.get("/search/products", params={"q": "xqzvy"})).json()
    assert nothing == {"items": [], "next_cursor": None, "mode": "fuzzy"}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/search/products", 400),
        ("/search/products?q=", 400),
        ("/search/products?q=%20%20", 400),
        ("/search/products?q=lamp&limit=0", 400),
        ("/search/products?q=lamp&limit=101", 400),
        ("/search/products?q=lamp&cursor=garbage!!", 400),
        ("/search/products?q=lamp&cursor=WzEsMl0", 400),
        ("/categories/1/products?cursor=WyJ4Il0", 400),
        ("/categories/1/products?limit=-1", 400),
        ("/categories/999/products", 404),
        ("/categories/0/products", 400),
        ("/products/top-selling?limit=1000", 400),
        ("/recommendations", 400),
        ("/recommendations?product_id=abc", 400),
    ],
)
async def test_display_bad_input(client: httpx.AsyncClient, path: str, status: int) -> None:
    response = await client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_category_pages_walk_the_whole_category(client: httpx.AsyncClient, primary: asyncpg.Connection) -> None:
    expected = [
        r["id"]
        for r in await primary.fetch("SELECT id FROM products WHERE category_id = 2 AND NOT archived ORDER BY id")
    ]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/categories/2/products", params=params)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == expected


def _category_2_cursor() -> str:
    from app.fastpath.cursors import CategoryCursor, encode_cursor

    return encode_cursor(CategoryCursor(2, 10))


async def test_cursor_of_another_category_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.get("/categories/3/products", params={"cursor": _category_2_cursor()})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


async def test_top_selling_comes_from_order_lines(client: httpx.AsyncClient, primary: asyncpg.Connection) -> None:
    best = await primary.fetchval(
        """SELECT ol.product_id FROM order_lines ol JOIN products p ON p.id = ol.product_id AND NOT p.archived
           GROUP BY ol.product_id ORDER BY sum(quantity) DESC, ol.product_id LIMIT 1"""
    )
    body = (await client.get("/products/top-selling", params={"limit": 5})).json()
    assert body["items"][0]["id"] == best
    assert len(body["items"]) == 5
    assert (await client.get("/products/top-selling", params={"limit": 5})).headers["x-cache"] == "hit"


async def test_recommendations_co_purchased_then_degrade_to_empty(
    db: ScratchDatabase, client: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    # A product nobody has bought yet, then bought together with three products of other
    # categories 3, 2 and 1 times: the ranking is known exactly, whatever the seeded orders are.
    # By count it is the reverse of id order, so a ranking by id alone cannot pass.
    product = await primary.fetchval(
        "INSERT INTO products (sku, name, category_id, price_cents) VALUES ('RECO-1', 'Anchor', 1, 100) RETURNING id"
    )
    partners = [
        r["id"]
        for r in await primary.fetch(
            "SELECT id FROM products WHERE category_id <> 1 AND NOT archived ORDER BY id DESC LIMIT 3"
        )
    ]
    for partner, times in zip(partners, (3, 2, 1), strict=True):
        await primary.execute(
            """WITH o AS (INSERT INTO orders (total_cents, currency)
                          SELECT 200, 'USD' FROM generate_series(1, $3) RETURNING id)
               INSERT INTO order_lines (order_id, line_no, product_id, quantity, price_cents)
               SELECT o.id, l.line_no, l.product_id, 1, 100
               FROM o, unnest(ARRAY[$1::bigint, $2::bigint]) WITH ORDINALITY AS l(product_id, line_no)""",
            product,
            partner,
            times,
        )
    # Fewer co-purchases than asked for: topped up with the best seller of the product's category.
    category_best = await primary.fetchval(
        """SELECT p.id FROM products p
           LEFT JOIN (SELECT product_id, sum(quantity) AS sold FROM order_lines GROUP BY 1) s ON s.product_id = p.id
           WHERE p.category_id = 1 AND p.id <> $1 AND NOT p.archived
           ORDER BY coalesce(s.sold, 0) DESC, p.id LIMIT 1""",
        product,
    )
    await wait_for_replica(db.stack)

    response = await client.get("/recommendations", params={"product_id": product, "limit": 4})
    assert response.status_code == 200
    items = response.json()["items"]
    assert [p["id"] for p in items] == [*partners, category_best]
    assert items[-1]["category_id"] == 1

    unknown = await client.get("/recommendations", params={"product_id": 987654})
    assert unknown.status_code == 200
    assert unknown.json() == {"items": []}

    # A real failure: the service's role loses access to the order lines.
    await primary.execute("REVOKE SELECT ON order_lines FROM catalog_app")
    await wait_for_replica(db.stack)
    broken = await client.get("/recommendations", params={"product_id": product, "limit": 3})
    assert broken.status_code == 200
    assert broken.json() == {"items": []}
    await primary.execute("GRANT SELECT ON order_lines TO catalog_app")


async def test_anonymous_reads_never_touch_the_primary_with_a_healthy_replica(db: ScratchDatabase) -> None:
    async with running_app(db.settings()) as (_app, client):

        def primary_reads() -> float:
            from prometheus_client import REGISTRY

            return sum(
                s.value
                for m in REGISTRY.collect()
                if m.name == "catalog_db_query_seconds"
                for s in m.samples
                if s.name.endswith("_count") and s.labels.get("pool") == "primary-read"
            )

        before = primary_reads()
        for path in (
            "/products/1",
            "/products/2",
            "/search/products?q=lamp",
            "/categories/1/products",
            "/products/top-selling",
            "/recommendations?product_id=1",
            "/products/1",
        ):
            response = await client.get(path)
            assert response.status_code == 200
            assert response.headers["x-read-source"] in ("replica", "cache"), path
        assert primary_reads() == before


async def test_near_caches_of_other_instances_hear_the_invalidation(
    db: ScratchDatabase, admin_headers: dict[str, str]
) -> None:
    # A near-cache TTL far beyond the test's length: only the announcement can drop the entry.
    settings = _relay_settings(db, near_cache_ttl_s=60.0)
    async with running_app(settings) as (_app_a, writer), running_app(settings) as (app_b, reader):
        near_b = runtime_of(app_b).near_cache
        first = await reader.get("/products/61")
        await reader.get("/products/61")
        assert near_b.get(61) is not None, "instance B holds product 61 in process"
        written = await writer.patch("/products/61", json={"name": "Renamed on A"}, headers=admin_headers)
        version = written.json()["version"]

        async def dropped() -> bool:
            entry = near_b.get(61)
            return entry is None or entry.version >= version

        await until(dropped, within_s=settings.near_cache.ttl_s / 10)  # 10x inside the TTL: the announcement
        await wait_for_replica(db.stack)
        again = await reader.get("/products/61")
        assert again.json()["name"] == "Renamed on A"
        assert again.json()["version"] > first.json()["version"]


async def test_relay_reconnect_clears_the_near_cache(db: ScratchDatabase, primary: asyncpg.Connection) -> None:
    async with running_app(_relay_settings(db)) as (app, client):
        relay = runtime_of(app).relay
        near = runtime_of(app).near_cache

        async def listening() -> bool:
            return bool(relay.connected)

        await until(listening)  # its first connect clears the near cache too

        async def held() -> bool:  # (a read during a relay reconnect is served but not kept: retry)
            await client.get("/products/62")
            return near.get(62) is not None

        await until(held)
        await primary.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'catalog.relay' AND datname = current_database()"
        )

        async def reconnected() -> bool:
            return relay.connections >= 2 and relay.connected

        await until(reconnected)
        assert near.get(62) is None, "announcements may have been missed: start over"


async def test_forged_cursors_are_400_and_leave_the_replica_in_rotation(client: httpx.AsyncClient) -> None:
    import base64

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    huge_id = b64(b"[1,18446744073709551615]")
    huge_rank = b64(b'["fulltext",1e39,1,"x"]')
    for path, params in (
        ("/categories/1/products", {"cursor": huge_id}),
        ("/search/products", {"q": "lamp", "cursor": huge_rank}),
    ):
        response = await client.get(path, params=params)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_cursor"
    assert (await client.get("/products/63")).headers["x-read-source"] == "replica"


async def test_non_ascii_cookie_is_ignored(client: httpx.AsyncClient) -> None:
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("catalog_ryw_tokens_ignored_total", {"reason": "malformed"}) or 0.0
    response = await client.get("/products/64", headers={"Cookie": "catalog_ryw=\xe9t\xe9.x".encode("latin-1")})
    assert response.status_code == 200
    after = REGISTRY.get_sample_value("catalog_ryw_tokens_ignored_total", {"reason": "malformed"}) or 0.0
    assert after == before + 1

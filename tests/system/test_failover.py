"""``ops/dev failover`` under writes: the same app instances follow the promoted replica, and the
cache keeps nothing of the lost timeline (docs/adr/0014).

The stack is this module's own (the launcher on free ports). Replication to the replica is cut
first, so the writes made after it are lost at the failover, deterministically: the relay has
already fenced and cached the lost versions, and the product is then written again on the new
timeline with a version number it had on the old one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from app.admin_cli.cache_check import check_cache
from app.contracts.cache_keys import decode_entry, encode_entry, fence_key, product_key
from app.contracts.cache_scripts import FILL_IF_NEWER
from devtools.stack import Stack
from devtools.stack.failover import failover
from tests.fixtures.stack import own_stack, wait_for_replica

pytestmark = pytest.mark.system
ADMIN = {"Authorization": "Bearer test-admin-token"}
REUSED = 7  # the product written on the lost timeline, then again on the new one
BACKGROUND = range(20, 30)  # products the background writer keeps changing
SCRATCH_DB = 15  # a Redis database of this test's own: the old timeline's keys are replayed there


@pytest.fixture(scope="module")
def failover_stack() -> Iterator[Stack]:
    with own_stack(replicas=1, instances=2) as stack:
        yield stack


async def _until(condition: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


def _dsn(stack: Stack, port: int | None = None) -> str:
    return stack.config.superuser_dsn(port or stack.config.primary_port)


async def _cut_replication(stack: Stack) -> None:
    """The replica stops receiving WAL: what the primary commits from now on is never shipped."""
    conn = await asyncpg.connect(_dsn(stack, stack.config.port_of("replica-1")))
    try:
        await conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        await conn.execute("SELECT pg_reload_conf()")

        async def disconnected() -> bool:
            return int(await conn.fetchval("SELECT count(*) FROM pg_stat_wal_receiver")) == 0

        await _until(disconnected)
    finally:
        await conn.close()


async def _patch(client: httpx.AsyncClient, product_id: int, price: int) -> httpx.Response:
    return await client.patch(f"/products/{product_id}", json={"price_cents": price}, headers=ADMIN)


@dataclass
class Writer:
    """Keeps writing through nginx; remembers when each write started and how it ended."""

    client: httpx.AsyncClient
    results: list[tuple[float, int]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = (await _patch(self.client, BACKGROUND[n % len(BACKGROUND)], 5_000 + n)).status_code
            except httpx.HTTPError:
                status = 0
            self.results.append((started, status))
            n += 1
            await asyncio.sleep(0.05)


async def _cached(redis: Redis, product_id: int) -> tuple[int | None, int | None]:
    """(fence, cached entry's version) of a product."""
    fence, entry = await redis.mget([fence_key(product_id), product_key(product_id)])
    return (None if fence is None else int(fence)), (None if entry is None else decode_entry(entry)[0])


async def test_writes_follow_the_promoted_replica_and_the_lost_timeline_leaves_nothing_in_the_cache(
    failover_stack: Stack,
) -> None:
    stack = failover_stack
    redis = Redis.from_url(stack.config.redis_url)
    scratch = Redis.from_url(stack.config.redis_url.rsplit("/", 1)[0] + f"/{SCRATCH_DB}")
    async with (
        httpx.AsyncClient(base_url=stack.config.url, timeout=5) as admin,
        httpx.AsyncClient(base_url=stack.config.url, timeout=5) as reader,
    ):
        try:
            # --- before: the product at version v on both nodes, then replication is cut
            kept = (await reader.get(f"/products/{REUSED}")).json()
            await wait_for_replica(stack)
            await _cut_replication(stack)

            # --- two writes only the old primary will ever have: versions v+1 and v+2
            for price in (111, 222):
                lost = await _patch(admin, REUSED, price)
                assert lost.status_code == 200, lost.text
            lost_version = lost.json()["version"]
            assert lost_version == kept["version"] + 2
            lost_cookie = "; ".join(f"{name}={value}" for name, value in lost.cookies.items())
            assert lost_cookie

            async def relay_fenced_and_cached_the_lost_version() -> bool:
                await reader.get(f"/products/{REUSED}")
                return await _cached(redis, REUSED) == (lost_version, lost_version)

            await _until(relay_fenced_and_cached_the_lost_version)
            old_keys = {key: await redis.dump(key) for key in (fence_key(REUSED), product_key(REUSED))}

            # --- fail over under writes
            writer = Writer(admin)
            stop = asyncio.Event()
            background = asyncio.create_task(writer.run(stop))
            await asyncio.sleep(0.5)
            failover_at = time.monotonic()
            report = await asyncio.to_thread(failover, stack)
            assert report.promoted == "replica-1"
            assert stack.config.primary_port == report.primary_port

            async def a_write_succeeds() -> bool:
                return (await _patch(admin, BACKGROUND[0], 4_242)).status_code == 200

            await _until(a_write_succeeds, within_s=5.0)
            resumed_s = time.monotonic() - failover_at
            await asyncio.sleep(1.0)
            stop.set()
            await background

            # The same instances, no restart: every write got 200 or a clean 503, and those
            # started more than 5 s after the failover all succeeded.
            statuses = {status for _, status in writer.results}
            assert statuses <= {200, 503}, writer.results
            late = [status for started, status in writer.results if started > failover_at + 5.0]
            assert all(status == 200 for status in late)
            failed = [started for started, status in writer.results if status != 200]
            last_failure = max(failed, default=0.0)
            after = [started for started, status in writer.results if status == 200 and started > last_failure]
            resumed_s = min(resumed_s, after[0] - failover_at) if failed else 0.0
            assert resumed_s < 5.0
            print(
                f"\nfailover: writes refused {len(failed)} of {len(writer.results)}, all 200 again "
                f"{resumed_s:.2f} s after it began (promote {report.promote_s:.2f} s)"
            )

            # --- the lost writes are gone: the new primary has version v again
            primary = await asyncpg.connect(_dsn(stack))
            try:
                row = await primary.fetchrow("SELECT version, price_cents FROM products WHERE id = $1", REUSED)
                assert row is not None
                assert row["version"] == kept["version"]
            finally:
                await primary.close()

            # --- the version-reuse case: written again on the new timeline, it takes v+1, a number
            # it had on the lost one with other contents
            rewritten = await _patch(admin, REUSED, 333)
            assert rewritten.status_code == 200, rewritten.text
            new_version = rewritten.json()["version"]
            assert new_version == kept["version"] + 1 < lost_version

            # Reproduced: in a Redis that kept the old timeline's keys (replayed into a scratch
            # database), the lost v+2 entry lies and its fence refuses every fill of the real row.
            await scratch.flushdb()
            for key, value in old_keys.items():
                assert value is not None
                await scratch.restore(key, 0, value)
            fill = scratch.register_script(FILL_IF_NEWER)
            body = (await reader.get(f"/products/{REUSED}")).content
            args = [new_version, encode_entry(new_version, body), 60_000]
            assert await fill(keys=[product_key(REUSED), fence_key(REUSED)], args=args) == 0
            version, stale_body = decode_entry(await scratch.get(product_key(REUSED)))
            assert (version, b'"price_cents":222' in stale_body) == (lost_version, True)

            # Healed: the real cache serves and keeps the new row, fenced at its own version.
            async def cache_holds_the_new_row() -> bool:
                response = await reader.get(f"/products/{REUSED}")
                return response.json()["price_cents"] == 333 and await _cached(redis, REUSED) == (
                    new_version,
                    new_version,
                )

            await _until(cache_holds_the_new_row)

            # A read-your-writes cookie from the lost timeline (an LSN and a version the new
            # primary never had) is served, not refused.
            for path in (f"/products/{REUSED}", "/search/products?q=product", "/categories/1/products"):
                response = await reader.get(path, headers={"Cookie": lost_cookie})
                assert response.status_code == 200, (path, response.text)

            # --- quiesce: the relays drained on the new primary, and nothing cached is stale
            conn = await asyncpg.connect(_dsn(stack))
            try:

                async def drained() -> bool:
                    return int(await conn.fetchval("SELECT count(*) FROM outbox")) == 0

                await _until(drained)
                processed_since = await conn.fetchval(
                    "SELECT coalesce(sum(events), 0) FROM outbox_processed WHERE processed_at > now() - $1::interval",
                    timedelta(seconds=time.monotonic() - failover_at),
                )
                assert processed_since > 0
            finally:
                await conn.close()
            for product_id in (*BACKGROUND, REUSED):
                await reader.get(f"/products/{product_id}")
            result = await check_cache(_dsn(stack), stack.config.redis_url)
            assert result["checked"] >= len(BACKGROUND)
            assert (result["stale"], result["orphaned"]) == (0, 0), result["examples"]
            ready = (await reader.get("/readyz")).json()
            assert ready["primary"]["ok"] is True
        finally:
            await scratch.flushdb()
            await scratch.aclose()
            await redis.aclose()

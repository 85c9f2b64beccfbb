"""Cache amnesia: Redis loses its keys (restart, flush, failover) while a replica trails the writes.

The fences go with the keys; a reader then fills the old row from the lagging replica. Without
recovery that row is served until its TTL by every instance; with it, the relay notices the
missing mark, re-applies the recent invalidations, and every instance serves the truth once the
replica catches up.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from app.contracts.cache_keys import CACHE_MARK, fence_key, lsn_hex, product_key, relay_mark_key
from app.contracts.cache_scripts import CacheScripts
from app.core.db import init_connection
from app.invalidation import batch as batch_module
from app.invalidation.plan import InvalidationPlan
from app.invalidation.recovery import CacheMemory
from app.invalidation.relay import OutboxRelay
from app.main import runtime_of
from devtools.stack import Stack
from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.stack import replay_paused, wait_for_replica
from tests.fixtures.waiting import until

pytestmark = pytest.mark.integration
PRODUCT = 7


async def _version(client: httpx.AsyncClient) -> int:
    response = await client.get(f"/products/{PRODUCT}")
    assert response.status_code == 200
    return int(response.json()["version"])


@pytest.mark.parametrize("recovery", [False, True], ids=["without-recovery", "with-recovery"])
async def test_redis_losing_its_keys_leaves_no_stale_product_on_any_instance(
    stack: Stack,
    db: ScratchDatabase,
    admin_headers: dict[str, str],
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    recovery: bool,
) -> None:
    if not recovery:  # the race, reproduced: relays that never notice Redis forgot
        monkeypatch.setattr(CacheMemory, "forgot", lambda self, scripts: _never())
    # Refresh off: the race needs a reader's fill after the invalidation, which is what happens
    # whenever the relay's refresh is skipped (a large batch) or fails.
    settings = db.settings(
        relay_enabled=True, relay_poll_interval_s=0.2, replica_max_lag_ms=20_000, relay_refresh_max_products=0
    )
    await redis_client.set(CACHE_MARK, lsn_hex(1))  # a Redis that has been with the relays all along
    async with running_app(settings) as (app_a, first), running_app(settings) as (app_b, second):
        instances = (first, second)
        before = await _version(first)
        for client in instances:
            assert await _version(client) == before  # cached everywhere
        async with replay_paused(stack):
            written = await first.patch(f"/products/{PRODUCT}", json={"price_cents": 777}, headers=admin_headers)
            assert written.status_code == 200
            first.cookies.clear()  # from here on an anonymous reader: the replica's lag is allowed
            new = written.json()["version"]

            async def invalidated() -> bool:
                raw = await redis_client.get(fence_key(PRODUCT))
                return raw is not None and int(raw) >= new

            async def heard_everywhere() -> bool:  # every near cache has dropped the old row
                entries = [runtime_of(app).near_cache.get(PRODUCT) for app in (app_a, app_b)]  # type: ignore[union-attr]
                return all(entry is None or entry.version >= new for entry in entries)

            await until(invalidated, step_s=0.01)
            await until(heard_everywhere, step_s=0.01)
            await redis_client.flushdb()  # amnesia: fences, entries, generations, the mark
            for client in instances:  # misses fill from the paused replica: the old row
                assert await _version(client) == before
            if recovery:

                async def marked() -> bool:  # set last, once the re-apply is done
                    return await redis_client.get(CACHE_MARK) is not None

                await until(marked, within_s=5)  # the relay noticed and re-applied
                assert await invalidated(), "the fence is back"
                assert await redis_client.get(product_key(PRODUCT)) is None, "the old row was dropped"
        await wait_for_replica(stack)
        await asyncio.sleep(0.3)  # near caches hear the re-applied announcements
        served = [await _version(client) for client in instances for _ in range(3)]
        if recovery:
            assert served == [new] * len(served)
        else:
            assert before in served, "without recovery the old row should have survived"


async def _insert(primary: asyncpg.Connection, product_id: int, version: int) -> None:
    payload = {"id": product_id, "version": version, "category_id": 1, "old_category_id": 1}
    await primary.execute(
        "INSERT INTO outbox (event_type, aggregate_id, payload) VALUES ('product.updated', $1, $2::jsonb)",
        product_id,
        json.dumps(payload),
    )


async def _never() -> bool:
    return False


async def test_a_rolled_back_mark_is_amnesia_too(redis_client: aioredis.Redis) -> None:
    """A Redis failover to a replica that missed the last writes keeps the mark, but an older one."""
    scripts = CacheScripts(redis_client)
    memory = CacheMemory()
    assert await memory.forgot(scripts), "no mark at all: a Redis that never heard from a relay"
    await redis_client.set(CACHE_MARK, lsn_hex(500))
    assert not await memory.forgot(scripts)
    await redis_client.set(CACHE_MARK, lsn_hex(600))
    assert not await memory.forgot(scripts)
    await redis_client.set(CACHE_MARK, lsn_hex(550))  # the failover lost the last batch's writes
    assert await memory.forgot(scripts)


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
async def test_a_relay_notices_a_failover_that_lost_its_own_last_batch(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection, busy: bool
) -> None:
    """Idle, the next drain finds nothing to claim and asks Redis. Busy, a relay never drains an
    empty queue and nothing asks Redis between batches: the next batch's own pipeline must find
    the marks lower than the relay left them, raise nothing over them, and the relay re-apply."""
    settings = db.settings()
    relay = OutboxRelay("r", settings.db.primary_dsn, redis_client, settings.relay, settings.cache)
    conn = await asyncpg.connect(settings.db.primary_dsn)
    try:
        await init_connection(conn)
        await redis_client.set(CACHE_MARK, lsn_hex(1))
        await _insert(primary, PRODUCT, 9)
        assert (await relay.drain(conn)).processed == 1
        assert await redis_client.get(fence_key(PRODUCT)) == b"9"
        before = {key: await redis_client.get(key) for key in (CACHE_MARK, relay_mark_key("r"))}
        # A Redis failover to a replica that missed exactly that batch: its fence, and the marks it raised.
        await redis_client.delete(fence_key(PRODUCT), relay_mark_key("r"))
        await redis_client.set(CACHE_MARK, lsn_hex(1))
        await redis_client.set(product_key(PRODUCT), b"8|{}")  # an entry the batch had deleted
        if busy:
            await _insert(primary, PRODUCT + 1, 4)
        assert (await relay.drain(conn)).processed == int(busy)
        assert await redis_client.get(fence_key(PRODUCT)) == b"9", "the lost batch was re-applied"
        assert await redis_client.get(product_key(PRODUCT)) is None
        for key, value in before.items():
            assert value is not None
            assert (await redis_client.get(key) or b"") >= value, f"{key} was not set again"
    finally:
        await conn.close()


async def test_a_failover_that_loses_a_lower_batch_landed_after_a_higher_mark_is_noticed(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two relays: A claims first (lower WAL position), B claims, applies and raises the mark past A's
    batch before A's batch reaches Redis. A failover to a Redis replica that has B's batch but not
    A's keeps that higher mark; A must still notice that its batch is gone."""
    settings = db.settings()
    relays = {
        name: OutboxRelay(name, settings.db.primary_dsn, redis_client, settings.relay, settings.cache) for name in "ab"
    }
    conns = {name: await asyncpg.connect(settings.db.primary_dsn) for name in "ab"}
    held, release = asyncio.Event(), asyncio.Event()
    original = batch_module.apply_plan

    async def apply_plan_holding_a(scripts: CacheScripts, plan: InvalidationPlan, *args: Any, **kwargs: Any) -> bool:
        if PRODUCT in plan.versions:  # A's batch: claimed, its WAL position read, not yet in Redis
            held.set()
            await release.wait()
        return await original(scripts, plan, *args, **kwargs)

    monkeypatch.setattr(batch_module, "apply_plan", apply_plan_holding_a)

    try:
        for conn in conns.values():
            await init_connection(conn)
        await redis_client.set(CACHE_MARK, lsn_hex(1))
        await _insert(primary, PRODUCT, 9)
        drain_a = asyncio.create_task(relays["a"].drain(conns["a"]))
        await asyncio.wait_for(held.wait(), 5)
        await _insert(primary, PRODUCT + 1, 5)
        assert (await relays["b"].drain(conns["b"])).processed == 1  # B's higher mark is in Redis first
        replica = {key: await redis_client.dump(key) for key in await redis_client.keys("*")}
        release.set()
        assert (await drain_a).processed == 1
        assert await redis_client.get(fence_key(PRODUCT)) == b"9"

        # Failover to a Redis replica that had received everything up to B's batch, none of A's.
        await redis_client.flushdb()
        for key, value in replica.items():
            await redis_client.restore(key, 0, value)
        await redis_client.set(product_key(PRODUCT), b"8|{}")  # filled from a lagging replica meanwhile

        for name in "ab":
            await relays[name].drain(conns[name])
        assert await redis_client.get(fence_key(PRODUCT)) == b"9", "A's lost batch was re-applied"
        assert await redis_client.get(product_key(PRODUCT)) is None
    finally:
        release.set()
        for conn in conns.values():
            await conn.close()

"""A relay SIGKILLed mid-drain: no event lost, none applied twice by the claim, the rest drains elsewhere.

The claim (FOR UPDATE SKIP LOCKED) and the mark happen in one transaction, committed only after
Redis took the batch: a relay that dies holds nothing once Postgres notices its connection is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.contracts.cache_keys import fence_key
from app.invalidation.relay import OutboxRelay
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration
EVENTS = 30_000
PRODUCTS = 200


async def _count(primary: asyncpg.Connection, where: str) -> int:
    return int(await primary.fetchval(f"SELECT count(*) FROM outbox_events WHERE {where}"))


async def test_a_relay_killed_mid_drain_loses_nothing(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    await primary.execute(
        """INSERT INTO outbox (event_type, aggregate_id, payload)
           SELECT 'product.updated', g % $2 + 1,
                  jsonb_build_object('id', g % $2 + 1, 'version', g, 'category_id', 1, 'old_category_id', 1)
           FROM generate_series(1, $1) AS g""",
        EVENTS,
        PRODUCTS,
    )
    settings = db.settings()
    env = {
        **os.environ,
        "CATALOG_ENV": "test",
        "CATALOG_PRIMARY_DSN": settings.db.primary_dsn,
        "CATALOG_REDIS_URL": db.redis_url,
        "CATALOG_RYW_SECRET": settings.ryw.secret,
        "CATALOG_RELAY_BATCH_SIZE": "500",
        "CATALOG_LOG_LEVEL": "warning",
    }
    doomed = await asyncio.create_subprocess_exec(  # the standalone `catalog relay` process
        sys.executable, "-m", "app", "relay", "--name", "doomed", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while await _count(primary, "processed_at IS NOT NULL") < EVENTS // 10:
            assert doomed.returncode is None, "the relay died on its own"
            assert time.monotonic() < deadline, "the relay did not start draining"
            await asyncio.sleep(0.005)
        doomed.send_signal(signal.SIGKILL)  # mid-drain: a batch is very likely claimed right now
        await asyncio.wait_for(doomed.wait(), 10)
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
    done_by_doomed = await _count(primary, "processed_by = 'doomed'")
    assert 0 < done_by_doomed < EVENTS, "killed mid-drain"

    survivor = OutboxRelay("survivor", settings.db.primary_dsn, redis_client, settings.relay, settings.cache)
    stop = asyncio.Event()
    task = asyncio.create_task(survivor.run(stop))
    try:
        deadline = time.monotonic() + 60  # the dead backend's claim is released once Postgres notices
        while await _count(primary, "processed_at IS NULL"):
            assert time.monotonic() < deadline, "the backlog did not drain on the survivor"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert await _count(primary, "processed_by = 'survivor'") == EVENTS - done_by_doomed
    # Marked once each: a claim the dead relay held was rolled back, never half-applied and kept.
    assert await _count(primary, "attempts <> 1") == 0
    for product_id in range(1, PRODUCTS + 1):
        newest = await primary.fetchval(
            "SELECT max((payload->>'version')::bigint) FROM outbox_events WHERE aggregate_id = $1", product_id
        )
        assert int(await redis_client.get(fence_key(product_id))) == newest

"""What ``ops/outbox`` reads once processed events live as batches: the same events as before."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.admin_cli.outbox import outbox_status
from app.contracts.cache_scripts import CacheScripts
from app.core.db import init_connection
from app.core.sql import queries
from app.invalidation.batch import BatchOptions, process_batch
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration
Q = queries("outbox")


async def test_tail_shows_the_newest_events_pending_or_processed_by_whom(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    await primary.execute(
        """INSERT INTO outbox (event_type, aggregate_id, payload)
           SELECT 'product.updated', g, jsonb_build_object('id', g, 'version', 2, 'category_id', 1,
                                                          'old_category_id', 1)
           FROM generate_series(1, 300) AS g;
           -- Every seventh event waits out a backoff, so batches interleave in id order.
           UPDATE outbox SET next_attempt_at = now() + interval '1 hour' WHERE id % 7 = 0"""
    )
    conn = await asyncpg.connect(db.settings().db.primary_dsn)
    await init_connection(conn)
    scripts = CacheScripts(redis_client)
    try:
        for name, size in (("a", 40), ("b", 70), ("a", 500)):
            options = BatchOptions(name, size, fence_ttl_ms=60_000, generation_interval_ms=0, max_backoff_s=1.0)
            await process_batch(conn, scripts, options)
        await primary.execute("UPDATE outbox SET next_attempt_at = now() WHERE id % 7 = 0 AND id < 200")
        await process_batch(conn, scripts, BatchOptions("c", 500, 60_000, 0, 1.0))
    finally:
        await conn.close()
    await init_connection(primary)
    by = {r["processed_by"] for r in await primary.fetch("SELECT DISTINCT processed_by FROM outbox_events")}
    assert by == {"a", "b", "c", None}

    for after in (0, 150, 290, 300):
        for limit in (1, 5, 20, 60, 400):
            tail = await primary.fetch(Q["recent_events"], after, limit)
            expected = await primary.fetch(
                "SELECT * FROM (SELECT * FROM outbox_events WHERE id > $1 ORDER BY id DESC LIMIT $2) AS t ORDER BY id",
                after,
                limit,
            )
            shown = [(r["id"], r["processed_by"], r["payload"]["id"]) for r in tail]
            assert shown == [(r["id"], r["processed_by"], r["payload"]["id"]) for r in expected], (after, limit)

    status = await outbox_status(primary)
    pending = await primary.fetchval("SELECT count(*) FROM outbox_events WHERE processed_at IS NULL")
    assert (status["pending"], status["processed_last_minute"]) == (pending, 300 - pending)

"""Outbox drain benchmark: how many events per second the relay turns into Redis invalidations.

Runs on a Postgres and a Redis of its own (scratch.py), never beside a live stack's relays.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import asyncpg

from app.core.redis import create_redis
from app.core.settings import CacheSettings, RedisSettings, RelaySettings
from app.invalidation.relay import OutboxRelay
from devtools.bench.scratch import drop_database, scratch_database

BENCH_DB = "catalog_bench_outbox"


@dataclass(frozen=True, slots=True)
class DrainRun:
    events: int
    relays: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def _load(dsn: str, events: int, products: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE outbox, outbox_processed")
        await conn.execute(
            """INSERT INTO outbox (event_type, aggregate_id, payload)
               SELECT 'product.updated', g % $2 + 1,
                      jsonb_build_object('id', g % $2 + 1, 'version', g, 'category_id', g % 16 + 1,
                                         'old_category_id', g % 16 + 1)
               FROM generate_series(1, $1) AS g""",
            events,
            products,
        )
        await conn.execute("VACUUM ANALYZE outbox")
    finally:
        await conn.close()


async def drain_once(dsn: str, redis_url: str, *, events: int, products: int, relays: int, batch: int) -> DrainRun:
    """Load ``events`` pending events, then time ``relays`` relays draining them to zero."""
    await _load(dsn, events, products)
    settings = RelaySettings(batch_size=batch, poll_interval_s=0.05)
    # The client the relay runs with in the service (`catalog relay`, app/cli.py): its pool, its
    # timeout and its C command packer. A plain Redis() packs each argument in Python instead.
    redis = create_redis(RedisSettings(url=redis_url), timeout_ms=settings.redis_timeout_ms)
    await redis.flushdb()
    conn = await asyncpg.connect(dsn)
    stop = asyncio.Event()
    workers = [OutboxRelay(f"bench-{i}", dsn, redis, settings, CacheSettings()) for i in range(relays)]
    started = time.perf_counter()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        # Drained means the database says so, not the relays' own counters.
        while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)"):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await conn.close()
        await redis.flushdb()
        await redis.aclose()
    processed = sum(w.processed_total for w in workers)
    if processed != events:
        raise RuntimeError(f"processed {processed} events, expected {events}")
    return DrainRun(events, relays, elapsed)


async def bench_outbox(
    admin_dsn: str, redis_url: str, *, events: int, products: int, runs: int, batch: int
) -> dict[int, list[DrainRun]]:
    dsn = await scratch_database(admin_dsn, BENCH_DB)
    results: dict[int, list[DrainRun]] = {}
    try:
        for relays in (1, 2):
            results[relays] = [
                await drain_once(dsn, redis_url, events=events, products=products, relays=relays, batch=batch)
                for _ in range(runs)
            ]
    finally:
        await drop_database(admin_dsn, BENCH_DB)
    return results


def median_rate(runs: list[DrainRun]) -> float:
    return statistics.median(r.rate for r in runs)

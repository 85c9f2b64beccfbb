"""Seeding: the bulk path (parallel COPY, indexes built at the end) leaves the schema intact."""

from __future__ import annotations

import asyncpg
import pytest

import app.seed.seed as seeding
from app.core.migrate import create_database, drop_database, migrate
from devtools.stack import Stack

pytestmark = pytest.mark.integration

INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'products' ORDER BY indexname"


async def test_bulk_seed_loads_everything_and_rebuilds_the_same_indexes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = stack.config
    admin_dsn = c.superuser_dsn(c.primary_port, "postgres")
    try:
        dsn = await create_database(admin_dsn, "seed_bulk", replace=True)
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            indexes_before = await conn.fetch(INDEXES)
            monkeypatch.setattr(seeding, "BULK_THRESHOLD", 1_000)
            result = await seeding.seed(dsn, products=5_000, categories=8, batch_size=700, show_progress=False)
            assert not result.skipped
            assert await conn.fetchval("SELECT count(*) FROM products") == 5_000
            assert await conn.fetchval("SELECT count(DISTINCT sku) FROM products") == 5_000
            assert await conn.fetchval("SELECT count(*) FROM orders") == result.orders
            assert await conn.fetch(INDEXES) == indexes_before
            again = await seeding.seed(dsn, products=5_000, categories=8, show_progress=False)
            assert again.skipped, "a seeded catalog is left alone"
        finally:
            await conn.close()
    finally:
        await drop_database(admin_dsn, "seed_bulk")

"""A pooled connection goes back to its pool without a round trip of its own.

asyncpg's default release sends a reset query (advisory unlocks, CLOSE ALL, UNLISTEN *, RESET ALL)
every time: one more round trip for each write and each uncached read. Our pools release with
``keep_session``; what must still hold is what the reset was for: the next user of the connection
finds no transaction open and the session as it was configured.
"""

from __future__ import annotations

import asyncpg
import pytest

from app.core.db import create_write_pool
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration


async def test_a_release_sends_nothing_to_the_server(db: ScratchDatabase) -> None:
    settings = db.settings(pool_max_size=1)
    pool = await create_write_pool(settings.db)
    seen: list[str] = []

    def log(record: asyncpg.connection.LoggedQuery) -> None:
        seen.append(record.query)

    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(log)  # on the connection itself, which outlives this proxy
            await conn.fetchval("SELECT 1")
        async with pool.acquire() as conn:
            conn.remove_query_logger(log)
    finally:
        await pool.close()
    assert seen == ["SELECT 1"], f"released with a round trip of its own: {seen[1:]}"


async def test_a_transaction_left_open_is_rolled_back_on_release(db: ScratchDatabase) -> None:
    pool = await create_write_pool(db.settings(pool_max_size=1).db)
    try:
        async with pool.acquire() as conn:
            # As a caller cancelled mid-transaction leaves it: begun, never ended.
            await conn.execute("BEGIN")
            await conn.execute("UPDATE products SET price_cents = 1 WHERE id = 7")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT price_cents FROM products WHERE id = 7") != 1
    finally:
        await pool.close()


"""A conditional write that matches no row, then finds the row there when it asks why.

Under READ COMMITTED each statement sees what had committed when it began. A write on a product
whose row commits between the write's UPDATE and the statement that explains the miss (a create
with that id, as after a failover re-issues ids the old primary had handed out) found no row, then
a live product at the version it asked for: that was an AssertionError, a 500, seen once in the HA
drill. The row is there by the time the write explains itself, so the write is applied to it.

The race is made deterministic by committing the concurrent create exactly between the two
statements, on a real second connection; everything else is the real write path and database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from app.core.db import WritePool, create_write_pool
from app.core.sql import queries
from app.writes.service import ProductWrites
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration
PRODUCT_STATE = queries("catalog")["product_state"]


class _CommitsBeforeTheExplanation:
    """A pooled connection that runs ``before`` just before the write asks why it matched nothing."""

    def __init__(self, conn: Any, before: Callable[[], Awaitable[None]]) -> None:
        self._conn, self._before = conn, before
        self.explained = 0

    async def fetchrow(self, query: str, *args: Any) -> Any:
        if query == PRODUCT_STATE:
            self.explained += 1
            await self._before()
        return await self._conn.fetchrow(query, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _Interposed:
    def __init__(self, pool: WritePool, before: Callable[[], Awaitable[None]]) -> None:
        self.pool, self.before = pool, before
        self.last: _CommitsBeforeTheExplanation | None = None

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self.pool.acquire() as conn:
            self.last = _CommitsBeforeTheExplanation(conn, self.before)
            yield self.last


async def _racing_create(db: ScratchDatabase) -> tuple[int, asyncpg.Connection, Callable[[], Awaitable[None]]]:
    """A product create, its row written but not committed; the callable commits it."""
    other = await asyncpg.connect(db.primary_dsn)
    tx = other.transaction()
    await tx.start()
    product_id = await other.fetchval(
        "INSERT INTO products (sku, name, description, category_id, price_cents, currency, inventory) "
        "SELECT 'RACE-1', 'Appears mid-write', '', min(id), 500, 'EUR', 7 FROM categories RETURNING id"
    )
    committed = False

    async def commit() -> None:
        nonlocal committed
        if not committed:
            committed = True
            await tx.commit()

    return product_id, other, commit


@pytest.mark.parametrize("write", ["update", "adjust_inventory", "archive"])
async def test_a_write_on_a_row_that_commits_mid_write_is_applied_not_a_500(db: ScratchDatabase, write: str) -> None:
    pool = await create_write_pool(db.settings().db)
    product_id, other, commit = await _racing_create(db)
    try:
        interposed = _Interposed(pool, commit)
        writes = ProductWrites(interposed, None)  # type: ignore[arg-type]  # the real pool, interposed
        if write == "update":
            result = await writes.update(product_id, {"price_cents": 650}, None)
        elif write == "adjust_inventory":
            result = await writes.adjust_inventory(product_id, -2)
        else:
            result = await writes.archive(product_id, None)
        assert interposed.last is not None
        assert interposed.last.explained == 1, "the race did not happen: the write matched the row at once"
        row = await other.fetchrow("SELECT version, price_cents, inventory, archived FROM products WHERE id = $1",
                                   product_id)  # fmt: skip
        events = await other.fetchval("SELECT count(*) FROM outbox_events WHERE aggregate_id = $1", product_id)
    finally:
        await commit()
        await other.close()
        await pool.close()
    assert result.product.version == 2
    assert row is not None
    assert row["version"] == 2
    assert (row["price_cents"], row["inventory"], row["archived"]) == {
        "update": (650, 7, False),
        "adjust_inventory": (500, 5, False),
        "archive": (500, 7, True),
    }[write]
    assert events == 1, "one outbox event, for the one change"

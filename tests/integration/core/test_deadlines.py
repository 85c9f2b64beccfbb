"""Every request has a deadline: a connection storm or a stuck statement is a fast 503, not a queue."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration
LINE = {"items": [{"product_id": 5, "quantity": 1, "expected_price_cents": 0}]}


async def _checkout(client: httpx.AsyncClient) -> tuple[int, float, str]:
    started = time.perf_counter()
    response = await client.post("/checkout", json=LINE)
    return response.status_code, time.perf_counter() - started, response.headers.get("retry-after", "")


async def test_a_connection_storm_is_answered_503_quickly(db: ScratchDatabase, primary: asyncpg.Connection) -> None:
    # One connection, a short acquire deadline, two callers allowed to wait for it.
    settings = db.settings(pool_max_size=1, acquire_timeout_ms=300, max_waiting=2, statement_timeout_ms=5_000)
    async with running_app(settings) as (_app, client):
        async with primary.transaction():
            await primary.execute("SELECT 1 FROM products WHERE id = 5 FOR UPDATE")  # the first checkout waits here
            holder = asyncio.create_task(_checkout(client))
            await asyncio.sleep(0.2)  # it holds the only connection now
            storm = await asyncio.gather(*(_checkout(client) for _ in range(20)))
        status, _took, _ = await holder
    assert status == 409, "the held checkout finishes once the lock goes (price 0 is not the price)"
    assert [s for s, _, _ in storm] == [503] * 20
    assert all(retry_after == "1" for _, _, retry_after in storm)
    waited = sorted(took for _, took, _ in storm)
    # 18 are turned away at once (too many waiting); 2 wait out the 0.3 s acquire deadline.
    assert waited[17] < 0.25, waited
    assert 0.25 < waited[-1] < 1.5, waited


async def test_a_statement_past_its_deadline_is_a_503(db: ScratchDatabase, primary: asyncpg.Connection) -> None:
    settings = db.settings(statement_timeout_ms=300)
    async with running_app(settings) as (_app, client), primary.transaction():
        await primary.execute("SELECT 1 FROM products WHERE id = 5 FOR UPDATE")
        status, took, retry_after = await _checkout(client)
    assert (status, retry_after) == (503, "1")
    assert 0.25 < took < 2.0

"""The load mix asks only for products that exist: archived ones leave its id universe, at the
start of a run and at the next refresh while it runs."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from devtools.load.universe import ProductUniverse, keep_written, live_ids, write_ids
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration


async def test_archived_products_leave_the_universe(
    db: ScratchDatabase, client: httpx.AsyncClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    before = await live_ids(db.primary_dsn)
    # The most popular products, the ones a Zipf mix asks for most: archive three of them.
    path = tmp_path / "ids.txt"
    write_ids(path, before)
    universe = ProductUniverse(path, fallback=0, check_s=0.0)
    draws = [universe() for _ in range(2000)]
    archived = sorted({*draws[:50]})[:3]
    for product_id in archived:
        response = await client.delete(f"/products/{product_id}", headers=admin_headers)
        assert response.status_code in (200, 204), response.text

    after = await live_ids(db.primary_dsn)
    assert set(after) == set(before) - set(archived)

    stop = threading.Event()
    refresher = keep_written(db.primary_dsn, path, stop, every_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while not universe.refresh() and time.monotonic() < deadline:  # noqa: ASYNC110  (a file, not an event)
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        refresher.join(timeout=5)
    assert set(universe.ids) == set(after), "the refresher rewrote the file and the universe re-read it"
    drawn = {universe() for _ in range(20_000)}
    assert not drawn & set(archived), "no archived product is asked for once the universe refreshed"
    for product_id in sorted(drawn)[:20]:
        response = await client.get(f"/products/{product_id}")
        assert response.status_code == 200, f"product {product_id}: {response.status_code}"

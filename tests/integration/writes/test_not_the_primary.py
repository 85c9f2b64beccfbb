"""A write whose session lands on a server in recovery (the primary moved: a Patroni failover, or a
crashed primary that Patroni starts read-only before it promotes it again) is a 503 with
Retry-After, never a 500: nothing was written, and the client may send it again.

The "primary" here is the stack's real streaming replica, which answers every write as a standby
does (SQLSTATE 25006)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer test-admin-token"}


async def test_writes_on_a_standby_are_503_not_500(db: ScratchDatabase, primary: asyncpg.Connection) -> None:
    before = await primary.fetchrow("SELECT price_cents, version FROM products WHERE id = 5")
    assert before is not None
    c = db.stack.config
    settings = db.settings(primary_dsn=c.app_dsn(c.replica_port, db.name))
    async with running_app(settings) as (_app, client):
        write = await client.patch("/products/5", json={"price_cents": 4321}, headers=ADMIN)
        line = {"product_id": 5, "quantity": 1, "expected_price_cents": before["price_cents"]}
        checkout = await client.post("/checkout", json={"items": [line]}, headers={"Idempotency-Key": "standby-1"})
    for response in (write, checkout):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"].startswith("application/problem+json")
    after = await primary.fetchrow("SELECT price_cents, version FROM products WHERE id = 5")
    assert after == before

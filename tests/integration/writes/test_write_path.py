"""The write path: one primary transaction per write, with its outbox row and the RYW cookie."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from litestar import Litestar

from app.contracts.ryw import RywCookies, RywToken
from app.core.settings import Settings
from app.main import runtime_of
from devtools.stack import APP_ROLE
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.stack import replay_paused

pytestmark = pytest.mark.integration


def _token(response: httpx.Response, settings: Settings) -> RywToken:
    raw = response.cookies.get(settings.ryw.cookie_name)
    assert raw, "the write must set the read-your-writes cookie"
    token = RywCookies(settings.ryw).codec.decode(raw)
    assert isinstance(token, RywToken), token
    return token


async def _outbox(conn: asyncpg.Connection) -> list[dict[str, object]]:
    rows = await conn.fetch("SELECT event_type, aggregate_id, payload, processed_at FROM outbox_events ORDER BY id")
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


async def test_patch_bumps_version_writes_one_outbox_row_and_sets_ryw_cookie(
    client: httpx.AsyncClient, admin_headers: dict[str, str], primary: asyncpg.Connection, settings: Settings
) -> None:
    before = await primary.fetchrow("SELECT version, category_id FROM products WHERE id = 1")
    lsn_before = await primary.fetchval("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
    response = await client.patch("/products/1", json={"price_cents": 1234}, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["price_cents"] == 1234
    assert body["version"] == before["version"] + 1
    assert response.headers["etag"] == f'"{body["version"]}"'
    assert response.headers["cache-control"] == "no-store"

    token = _token(response, settings)
    assert token.writes == ((1, body["version"]),)
    lsn_after = await primary.fetchval("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
    assert lsn_before < token.lsn <= lsn_after
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie

    rows = await _outbox(primary)
    assert len(rows) == 1
    assert rows[0]["event_type"] == "product.updated"
    assert rows[0]["aggregate_id"] == 1
    assert rows[0]["payload"]["id"] == 1
    assert rows[0]["payload"]["version"] == body["version"]
    assert rows[0]["payload"]["category_id"] == before["category_id"]
    assert rows[0]["processed_at"] is None


async def test_a_second_write_merges_into_the_cookie(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    first = await client.patch("/products/1", json={"name": "First"}, headers=admin_headers)
    second = await client.patch("/products/2", json={"name": "Second"}, headers=admin_headers)
    token = _token(second, settings)
    assert token.version_of(1) == first.json()["version"]
    assert token.version_of(2) == second.json()["version"]
    assert token.lsn >= _token(first, settings).lsn


async def test_row_change_and_outbox_row_roll_back_together(
    client: httpx.AsyncClient, admin_headers: dict[str, str], primary: asyncpg.Connection
) -> None:
    # A real failure inside the transaction, after the UPDATE and the outbox INSERT have run.
    await primary.execute(
        """CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'injected failure after the row change'; END $$;
           CREATE TRIGGER fail_outbox AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_outbox();"""
    )
    before = await primary.fetchrow("SELECT price_cents, version FROM products WHERE id = 3")
    response = await client.patch("/products/3", json={"price_cents": before["price_cents"] + 1}, headers=admin_headers)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "set-cookie" not in response.headers
    after = await primary.fetchrow("SELECT price_cents, version FROM products WHERE id = 3")
    assert after == before
    assert await _outbox(primary) == []

    await primary.execute("DROP TRIGGER fail_outbox ON outbox")
    response = await client.patch("/products/3", json={"price_cents": before["price_cents"] + 1}, headers=admin_headers)
    assert response.status_code == 200
    assert len(await _outbox(primary)) == 1


async def test_if_match(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    current = (await client.get("/products/4")).json()["version"]
    stale = await client.patch(
        "/products/4", json={"name": "Lost update"}, headers={**admin_headers, "If-Match": f'"{current - 1}"'}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["current_version"] == current

    fresh = await client.put(
        "/products/4",
        json={
            "sku": "SKU-PUT-4",
            "name": "Replaced",
            "description": "d",
            "category_id": 2,
            "price_cents": 500,
            "currency": "EUR",
        },
        headers={**admin_headers, "If-Match": f'"{current}"'},
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["version"] == current + 1
    assert fresh.json()["currency"] == "EUR"

    again = await client.put(
        "/products/4",
        json={
            "sku": "SKU-PUT-4",
            "name": "Again",
            "description": "d",
            "category_id": 2,
            "price_cents": 500,
            "currency": "EUR",
        },
        headers={**admin_headers, "If-Match": f'"{current}"'},
    )
    assert again.status_code == 412
    bad = await client.patch("/products/4", json={"name": "x"}, headers={**admin_headers, "If-Match": "v1"})
    assert bad.status_code == 412, "a value that is no entity-tag names no version: refused, not ignored"


async def test_create_adjust_archive(
    client: httpx.AsyncClient, admin_headers: dict[str, str], primary: asyncpg.Connection
) -> None:
    created = await client.post(
        "/products",
        json={"sku": "NEW-1", "name": "Walnut Desk Lamp", "category_id": 1, "price_cents": 4999, "inventory": 2},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    product = created.json()
    assert created.headers["location"] == f"/products/{product['id']}"
    assert product["version"] == 1
    assert product["currency"] == "USD"

    duplicate = await client.post(
        "/products", json={"sku": "NEW-1", "name": "x", "category_id": 1, "price_cents": 1}, headers=admin_headers
    )
    assert duplicate.status_code == 409
    unknown_category = await client.post(
        "/products", json={"sku": "NEW-2", "name": "x", "category_id": 999, "price_cents": 1}, headers=admin_headers
    )
    assert unknown_category.status_code == 422

    pid = product["id"]
    down = await client.post(f"/products/{pid}/inventory", json={"delta": -2}, headers=admin_headers)
    assert down.status_code == 200
    assert down.json()["inventory"] == 0
    below = await client.post(f"/products/{pid}/inventory", json={"delta": -1}, headers=admin_headers)
    assert below.status_code == 409
    assert below.json()["code"] == "insufficient_inventory"
    assert await primary.fetchval("SELECT inventory FROM products WHERE id = $1", pid) == 0

    archived = await client.delete(f"/products/{pid}", headers=admin_headers)
    assert archived.status_code == 200
    gone = await client.patch(f"/products/{pid}", json={"name": "x"}, headers=admin_headers)
    assert gone.status_code == 404
    events = [r["event_type"] for r in await _outbox(primary)]
    assert events == ["product.created", "product.inventory_changed", "product.archived"]
    versions = [r["payload"]["version"] for r in await _outbox(primary)]
    assert versions == [1, 2, 3]


async def test_concurrent_inventory_deltas_are_atomic(
    client: httpx.AsyncClient, admin_headers: dict[str, str], primary: asyncpg.Connection
) -> None:
    import asyncio

    await primary.execute("UPDATE products SET inventory = 10 WHERE id = 5")
    results = await asyncio.gather(
        *(client.post("/products/5/inventory", json={"delta": -1}, headers=admin_headers) for _ in range(15))
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 10
    assert codes.count(409) == 5
    assert await primary.fetchval("SELECT inventory FROM products WHERE id = 5") == 0


async def test_writes_go_to_the_primary_never_the_replica_with_the_app_role(
    db: ScratchDatabase,
    app: Litestar,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    primary: asyncpg.Connection,
) -> None:
    runtime = runtime_of(app)
    replica = await asyncpg.connect(db.replica_dsn)
    try:
        before = await primary.fetchrow("SELECT name, version FROM products WHERE id = 6")
        async with replay_paused(db.stack):
            response = await client.patch("/products/6", json={"name": "Written on the primary"}, headers=admin_headers)
            assert response.status_code == 200, response.text
            assert response.json()["version"] == before["version"] + 1
            # The committed row is on the primary at once; the replica, not replaying, does not have it.
            on_primary = await primary.fetchrow("SELECT name, version FROM products WHERE id = 6")
            assert tuple(on_primary) == ("Written on the primary", before["version"] + 1)
            on_replica = await replica.fetchrow("SELECT name, version FROM products WHERE id = 6")
            assert tuple(on_replica) == tuple(before)

            # The display pools are read-only sessions, even the one that reaches the primary.
            assert runtime.router.replicas, "the app has a replica pool"
            read_pools = [("primary", runtime.router.primary)] + [(r.name, r.pool) for r in runtime.router.replicas]
            for name, pool in read_pools:
                in_recovery = await pool.fetchval("SELECT pg_is_in_recovery()")
                assert in_recovery is (name != "primary"), name
                assert await pool.fetchval("SHOW default_transaction_read_only") == "on", name
                with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                    await pool.execute("UPDATE products SET name = 'via a read pool' WHERE id = 6")
            assert await primary.fetchval("SELECT name FROM products WHERE id = 6") == "Written on the primary"

        # The write pool is a read-write session on the primary, as the least-privilege app role.
        assert await runtime.write_pool.fetchval("SELECT pg_is_in_recovery()") is False
        assert await runtime.write_pool.fetchval("SHOW transaction_read_only") == "off"
        assert await runtime.write_pool.fetchval("SELECT current_user") == APP_ROLE
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.write_pool.execute("DROP TABLE outbox")
    finally:
        await replica.close()


async def test_preconditions_by_the_book(
    client: httpx.AsyncClient, admin_headers: dict[str, str], primary: asyncpg.Connection
) -> None:
    """If-Match: strong comparison, lists, on every write that takes it (inventory too); If-None-Match: *."""
    current = await primary.fetchval("SELECT version FROM products WHERE id = 6")

    def if_match(value: str) -> dict[str, str]:
        return {**admin_headers, "If-Match": value}

    weak = await client.patch("/products/6", json={"name": "Weak"}, headers=if_match(f'W/"{current}"'))
    assert weak.status_code == 412, "a weak tag never matches under the strong comparison"
    stale_stock = await client.post("/products/6/inventory", json={"delta": 1}, headers=if_match(f'"{current - 1}"'))
    assert stale_stock.status_code == 412
    assert stale_stock.json()["current_version"] == current
    assert await primary.fetchval("SELECT version FROM products WHERE id = 6") == current, "nothing applied"
    listed = await client.post(
        "/products/6/inventory", json={"delta": 1}, headers=if_match(f'"{current - 1}", "{current}"')
    )
    assert listed.status_code == 200, "a list matches when any of its tags does"
    assert listed.headers["etag"] == f'"{current + 1}"'
    anything = await client.patch("/products/6", json={"name": "Any"}, headers=if_match("*"))
    assert anything.status_code == 200
    not_modified = await client.get("/products/6", headers={"If-None-Match": "*"})
    assert not_modified.status_code == 304, "If-None-Match: * matches any current product"
    assert not_modified.headers["etag"] == f'"{current + 2}"'

"""The decision path: checkout never trusts a stale price and never oversells."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.stack import replay_paused, wait_for_replica

pytestmark = pytest.mark.integration


def _line(product_id: int, price: int, quantity: int = 1) -> dict[str, int]:
    return {"product_id": product_id, "quantity": quantity, "expected_price_cents": price}


def _outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("catalog_checkouts_total", {"outcome": outcome}) or 0.0


async def _client(app) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://catalog.test")


async def test_the_articles_failure_shopper_sees_10_pays_12(
    db: ScratchDatabase, admin_headers: dict[str, str], primary: asyncpg.Connection
) -> None:
    # No relay: the cache keeps the old price; replay paused: so does the replica.
    settings = db.settings(relay_enabled=False, replica_max_lag_ms=20_000)
    async with running_app(settings) as (app, admin), await _client(app) as shopper:
        await primary.execute("UPDATE products SET price_cents = 1000, inventory = 5 WHERE id = 12")
        await wait_for_replica(db.stack)
        shown = await shopper.get("/products/12")
        assert shown.json()["price_cents"] == 1000
        async with replay_paused(db.stack):
            raised = await admin.patch("/products/12", json={"price_cents": 1200}, headers=admin_headers)
            assert raised.status_code == 200

            # The display path still says $10: from the cache, and the replica agrees.
            still = await shopper.get("/products/12")
            assert still.headers["x-read-source"] == "cache"
            assert still.json()["price_cents"] == 1000
            replica = await asyncpg.connect(db.replica_dsn)
            try:
                assert await replica.fetchval("SELECT price_cents FROM products WHERE id = 12") == 1000
            finally:
                await replica.close()

            before = _outcomes("price_changed")
            orders_before = await primary.fetchval("SELECT count(*) FROM orders")
            stale = await shopper.post("/checkout", json={"items": [_line(12, 1000)]})
            assert stale.status_code == 409
            assert stale.headers["content-type"] == "application/problem+json"
            problem = stale.json()
            assert problem["code"] == "price_changed"
            assert problem["items"] == [
                {"product_id": 12, "expected_price_cents": 1000, "price_cents": 1200, "changed": True}
            ]
            assert await primary.fetchval("SELECT count(*) FROM orders") == orders_before
            assert await primary.fetchval("SELECT inventory FROM products WHERE id = 12") == 5
            assert _outcomes("price_changed") == before + 1

            paid = await shopper.post("/checkout", json={"items": [_line(12, 1200, quantity=2)]})
            assert paid.status_code == 201, paid.text
            order = paid.json()
            assert order["items"] == [{"product_id": 12, "quantity": 2, "price_cents": 1200}]
            assert order["total_cents"] == 2400
            assert order["currency"] == "USD"
            assert paid.headers["location"] == f"/orders/{order['order_id']}"

    # No order line was ever written at a price other than the primary's at the time.
    lines = await primary.fetch("SELECT price_cents FROM order_lines WHERE order_id = $1", order["order_id"])
    assert [r["price_cents"] for r in lines] == [1200]
    assert await primary.fetchval("SELECT inventory FROM products WHERE id = 12") == 3


async def test_no_oversell_under_concurrency(db: ScratchDatabase, primary: asyncpg.Connection) -> None:
    await primary.execute("UPDATE products SET inventory = 10, price_cents = 500 WHERE id = 13")
    sold_before = await primary.fetchval("SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE product_id = 13")
    async with running_app(db.settings(pool_max_size=20)) as (_app, client):
        responses = await asyncio.gather(
            *(client.post("/checkout", json={"items": [_line(13, 500)]}) for _ in range(50))
        )
    codes = [r.status_code for r in responses]
    assert codes.count(201) == 10
    assert codes.count(409) == 40
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"out_of_stock"}
    assert await primary.fetchval("SELECT inventory FROM products WHERE id = 13") == 0
    sold = await primary.fetchval("SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE product_id = 13")
    assert sold - sold_before == 10
    placed = {r.json()["order_id"] for r in responses if r.status_code == 201}
    assert len(placed) == 10, "ten distinct orders"


async def test_opposite_lock_orders_do_not_deadlock(db: ScratchDatabase, primary: asyncpg.Connection) -> None:
    await primary.execute("UPDATE products SET inventory = 1000, price_cents = 100 WHERE id IN (14, 15, 16)")
    baskets = [
        [_line(14, 100), _line(15, 100), _line(16, 100)],
        [_line(16, 100), _line(15, 100), _line(14, 100)],
        [_line(15, 100), _line(14, 100)],
    ]
    async with running_app(db.settings(pool_max_size=20)) as (_app, client):
        responses = await asyncio.gather(*(client.post("/checkout", json={"items": baskets[i % 3]}) for i in range(60)))
    assert [r.status_code for r in responses] == [201] * 60, [r.text for r in responses if r.status_code != 201]
    left = {r["id"]: r["inventory"] for r in await primary.fetch(
        "SELECT id, inventory FROM products WHERE id IN (14, 15, 16)")}  # fmt: skip
    assert left == {14: 1000 - 60, 15: 1000 - 60, 16: 1000 - 40}


async def test_idempotency_key_sequential_and_concurrent(db: ScratchDatabase, primary: asyncpg.Connection) -> None:
    await primary.execute("UPDATE products SET inventory = 100, price_cents = 250 WHERE id = 17")
    lines_before = await primary.fetchval("SELECT count(*) FROM order_lines WHERE product_id = 17")
    body = {"items": [_line(17, 250, quantity=3)]}
    charged = [{"product_id": 17, "quantity": 3, "price_cents": 250}]
    async with running_app(db.settings(pool_max_size=20)) as (_app, client):
        first = await client.post("/checkout", json=body, headers={"Idempotency-Key": "order-abc"})
        assert first.status_code == 201, first.text
        order = first.json()
        assert order["items"] == charged
        assert order["total_cents"] == 750
        assert first.headers["location"] == f"/orders/{order['order_id']}"
        assert "idempotent-replayed" not in first.headers

        # A retry with the same key and body: the first order again, marked as a replay.
        again = await client.post("/checkout", json=body, headers={"Idempotency-Key": "order-abc"})
        assert again.status_code == 200, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        assert again.json() == order

        # The same key for a different basket: refused, nothing charged.
        other = await client.post(
            "/checkout", json={"items": [_line(17, 250, quantity=4)]}, headers={"Idempotency-Key": "order-abc"}
        )
        assert other.status_code == 422
        assert other.headers["content-type"] == "application/problem+json"
        assert other.json()["code"] == "idempotency_key_reused"
        assert "idempotent-replayed" not in other.headers
        assert await primary.fetchval("SELECT inventory FROM products WHERE id = 17") == 100 - 3

        # Twenty retries of one checkout at once: one places the order, the others replay it.
        replays_before = _outcomes("idempotent_replay")
        racing = await asyncio.gather(
            *(client.post("/checkout", json=body, headers={"Idempotency-Key": "order-xyz"}) for _ in range(20))
        )
        assert sorted(r.status_code for r in racing) == [200] * 19 + [201], [r.text for r in racing]
        [placed] = [r for r in racing if r.status_code == 201]
        winner = placed.json()
        assert winner["items"] == charged
        assert winner["total_cents"] == 750
        assert winner["order_id"] != order["order_id"]
        assert "idempotent-replayed" not in placed.headers
        for replay in (r for r in racing if r.status_code == 200):
            assert replay.headers["idempotent-replayed"] == "true"
            assert replay.headers["location"] == f"/orders/{winner['order_id']}"
            assert replay.json() == winner
        assert _outcomes("idempotent_replay") == replays_before + 19

    # Exactly one order per key, each with its one line, and the stock taken once per key.
    keyed = await primary.fetch(
        "SELECT idempotency_key, id FROM orders WHERE idempotency_key IN ('order-abc', 'order-xyz') ORDER BY id"
    )
    assert [tuple(r) for r in keyed] == [("order-abc", order["order_id"]), ("order-xyz", winner["order_id"])]
    lines = await primary.fetch(
        "SELECT order_id, quantity FROM order_lines WHERE product_id = 17 AND order_id = ANY($1) ORDER BY order_id",
        [order["order_id"], winner["order_id"]],
    )
    assert [tuple(r) for r in lines] == [(order["order_id"], 3), (winner["order_id"], 3)]
    assert await primary.fetchval("SELECT count(*) FROM order_lines WHERE product_id = 17") == lines_before + 2
    assert await primary.fetchval("SELECT inventory FROM products WHERE id = 17") == 100 - 3 - 3


async def test_unknown_and_archived_products(
    client: httpx.AsyncClient, admin_headers: dict[str, str], primary: asyncpg.Connection
) -> None:
    price, stock = await primary.fetchrow("SELECT price_cents, inventory FROM products WHERE id = 18")
    orders_before = await primary.fetchval("SELECT count(*) FROM orders")
    unknown = await client.post("/checkout", json={"items": [_line(18, price), _line(999_999, 1)]})
    assert unknown.status_code == 404
    assert unknown.json()["product_ids"] == [999_999]
    assert (await client.delete("/products/18", headers=admin_headers)).status_code == 200
    archived = await client.post("/checkout", json={"items": [_line(18, price)]})
    assert archived.status_code == 409
    assert archived.json()["code"] == "product_unavailable"
    assert archived.json()["product_ids"] == [18]
    # Neither attempt placed an order or took stock.
    assert await primary.fetchval("SELECT count(*) FROM orders") == orders_before
    assert await primary.fetchval("SELECT inventory FROM products WHERE id = 18") == stock


async def test_an_order_opens_only_with_its_token_and_reads_the_primary(
    client: httpx.AsyncClient, primary: asyncpg.Connection
) -> None:
    price = await primary.fetchval("UPDATE products SET inventory = 9 WHERE id = 19 RETURNING price_cents")
    response = await client.post("/checkout", json={"items": [_line(19, price, 2)]})
    assert response.status_code == 201, response.text
    placed = response.json()
    token = placed.pop("order_token")
    assert len(token) >= 22, "128 bits at least"
    # Right after the commit, before the replica could have it: the order is there, for its holder.
    fetched = await client.get(f"/orders/{placed['order_id']}", headers={"X-Order-Token": token})
    assert fetched.status_code == 200
    assert fetched.json() == placed
    assert fetched.headers["cache-control"] == "no-store"
    # A stranger learns nothing: no token, a wrong one, or another order's, all look like "no such order".
    other = await client.post("/checkout", json={"items": [_line(19, price, 1)]})
    for headers in ({}, {"X-Order-Token": "A" * 22}, {"X-Order-Token": other.json()["order_token"]}):
        refused = await client.get(f"/orders/{placed['order_id']}", headers=headers)
        assert refused.status_code == 404, headers
        assert refused.json()["code"] == "order_not_found"
    # Enumerating ids is no better: the neighbours are closed too.
    for order_id in (placed["order_id"] - 1, placed["order_id"] + 1):
        assert (await client.get(f"/orders/{order_id}", headers={"X-Order-Token": token})).status_code == 404
    missing = await client.get("/orders/987654321", headers={"X-Order-Token": token})
    assert missing.status_code == 404


async def test_checkout_feeds_top_sellers_and_the_buyers_view(db: ScratchDatabase, primary: asyncpg.Connection) -> None:
    await primary.execute("UPDATE products SET inventory = 500, price_cents = 10 WHERE id = 20")
    settings = db.settings(relay_enabled=True, relay_poll_interval_s=0.2)
    async with running_app(settings) as (app, buyer), await _client(app) as visitor:
        assert (await visitor.get("/products/top-selling?limit=3")).status_code == 200  # warm the cache
        placed = await buyer.post("/checkout", json={"items": [_line(20, 10, quantity=100)]})
        assert placed.status_code == 201
        assert (await buyer.get("/products/20")).json()["inventory"] == 400  # read-your-writes
        for _ in range(2):
            more = await buyer.post("/checkout", json={"items": [_line(20, 10, quantity=100)]})
            assert more.status_code == 201, more.text
        assert await primary.fetchval("SELECT inventory FROM products WHERE id = 20") == 200
        await wait_for_replica(db.stack)

        async def top() -> int:
            return (await visitor.get("/products/top-selling?limit=3")).json()["items"][0]["id"]

        for _ in range(100):
            if await top() == 20:
                break
            await asyncio.sleep(0.05)
        assert await top() == 20


BAD = [
    ({}, 400),
    ({"items": []}, 400),
    ({"items": [_line(1, 1, quantity=0)]}, 400),
    ({"items": [_line(1, 1, quantity=-1)]}, 400),
    ({"items": [_line(1, 1, quantity=101)]}, 400),
    ({"items": [_line(1, 1, quantity=10**12)]}, 400),
    ({"items": [{"product_id": "one", "quantity": 1, "expected_price_cents": 1}]}, 400),
    ({"items": [{"product_id": 1.5, "quantity": 1, "expected_price_cents": 1}]}, 400),
    ({"items": [{"product_id": 1, "quantity": 1}]}, 400),
    ({"items": [{"product_id": 1, "quantity": 1, "expected_price_cents": -5}]}, 400),
    ({"items": [{**_line(1, 1), "coupon": "FREE"}]}, 400),
    ({"items": [_line(1, 1), _line(1, 1)]}, 422),  # well-formed, but one product per line
    ({"items": [_line(i, 1) for i in range(1, 52)]}, 400),
    ({"items": [_line(0, 1)]}, 400),
    ({"items": "everything"}, 400),
]


@pytest.mark.parametrize(("body", "status"), BAD)
async def test_checkout_bad_input(
    client: httpx.AsyncClient, primary: asyncpg.Connection, body: object, status: int
) -> None:
    orders_before = await primary.fetchval("SELECT count(*) FROM orders")
    response = await client.post("/checkout", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await primary.fetchval("SELECT count(*) FROM orders") == orders_before


async def test_checkout_oversized_body_and_bad_keys(client: httpx.AsyncClient) -> None:
    huge = {"items": [{**_line(1, 1), "pad": "x" * 70_000}]}
    assert (await client.post("/checkout", json=huge)).status_code == 413
    for key in ("", "x" * 201, "has space"):
        response = await client.post("/checkout", json={"items": [_line(1, 1)]}, headers={"Idempotency-Key": key})
        assert response.status_code == 400, key
        assert response.headers["content-type"] == "application/problem+json"

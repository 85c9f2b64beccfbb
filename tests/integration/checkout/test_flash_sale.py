"""A flash sale: many shoppers, one product, little stock, two instances. Exactly the stock is
sold, every other shopper hears out_of_stock, a retried checkout returns its first order, and the
checkouts were decided in shared transactions (group commit, docs/adr/0017), not one by one."""

from __future__ import annotations

import asyncio
import collections
import uuid

import asyncpg
import httpx
import pytest

from app.main import runtime_of
from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration

PRODUCT, STOCK, PRICE = 21, 40, 2_500
SHOPPERS, AT_ONCE, RETRIERS = 200, 64, 30


def _body(price: int = PRICE, quantity: int = 1) -> dict[str, object]:
    return {"items": [{"product_id": PRODUCT, "quantity": quantity, "expected_price_cents": price}]}


async def test_a_flash_sale_sells_exactly_the_stock_with_retries_answered_alike(
    db: ScratchDatabase, primary: asyncpg.Connection
) -> None:
    await primary.execute("UPDATE products SET inventory = $2, price_cents = $3 WHERE id = $1", PRODUCT, STOCK, PRICE)
    sold_before = await primary.fetchval("SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE product_id = $1",
                                         PRODUCT)  # fmt: skip
    keys = [str(uuid.uuid4()) for _ in range(SHOPPERS)]
    settings = db.settings(pool_max_size=10)
    async with running_app(settings) as (app_1, client_1), running_app(settings) as (app_2, client_2):
        gate = asyncio.Semaphore(AT_ONCE)

        async def shop(n: int, client: httpx.AsyncClient) -> tuple[int, httpx.Response]:
            async with gate:
                return n, await client.post("/checkout", json=_body(), headers={"Idempotency-Key": keys[n]})

        # Every shopper once, half on each instance; the first RETRIERS also retry at once on the
        # other instance (a client that timed out and tried again), in the middle of the sale.
        calls = [shop(n, client_1 if n % 2 else client_2) for n in range(SHOPPERS)]
        calls += [shop(n, client_2 if n % 2 else client_1) for n in range(RETRIERS)]
        answered = await asyncio.gather(*calls)
        batches = [runtime_of(app).checkout.lanes for app in (app_1, app_2)]

    by_shopper: dict[int, list[httpx.Response]] = collections.defaultdict(list)
    for n, response in answered:
        by_shopper[n].append(response)
    codes = collections.Counter(r.status_code for _, r in answered)
    assert set(codes) <= {200, 201, 409}, codes
    problems = {r.json()["code"] for _, r in answered if r.status_code == 409}
    assert problems <= {"out_of_stock"}, problems
    placed = {r.json()["order_id"] for _, r in answered if r.status_code in (200, 201)}
    assert codes[201] == STOCK, f"exactly the stock is sold: {codes}"
    assert len(placed) == STOCK, "one order per buyer, however often they retried"
    for responses in by_shopper.values():
        orders = {r.json()["order_id"] for r in responses if r.status_code in (200, 201)}
        assert len(orders) <= 1, "a retry never places a second order"
        if orders:  # a buyer whose retry came second hears the same order, replayed
            assert all(r.status_code in (200, 201) for r in responses), [r.status_code for r in responses]
            assert sum(r.status_code == 201 for r in responses) == 1

    assert await primary.fetchval("SELECT inventory FROM products WHERE id = $1", PRODUCT) == 0
    sold = await primary.fetchval("SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE product_id = $1", PRODUCT)
    assert sold - sold_before == STOCK, "oversold: 0"
    assert await primary.fetchval("SELECT count(*) FROM orders WHERE idempotency_key = ANY($1)", keys) == STOCK
    assert max(lanes.largest_batch for lanes in batches) > 1, "checkouts shared transactions"
    assert sum(lanes.batches for lanes in batches) < SHOPPERS + RETRIERS


async def test_a_batch_answers_each_checkout_as_it_would_be_answered_alone(
    db: ScratchDatabase, primary: asyncpg.Connection
) -> None:
    """A stale price, a quantity past the stock and a reused key, in the same batch as orders."""
    await primary.execute("UPDATE products SET inventory = 5, price_cents = $2 WHERE id = $1", PRODUCT, PRICE)
    async with running_app(db.settings(pool_max_size=5)) as (app, client):
        lanes = runtime_of(app).checkout.lanes
        hold = asyncio.Event()
        run_batch = lanes.run_batch

        async def held(batch):  # type: ignore[no-untyped-def]
            await hold.wait()  # the first batch waits, so everything below queues behind it
            return await run_batch(batch)

        lanes.run_batch = held
        first = asyncio.create_task(client.post("/checkout", json=_body(), headers={"Idempotency-Key": "k-first"}))
        await asyncio.sleep(0.05)
        lanes.run_batch = run_batch
        queued = [
            client.post("/checkout", json=_body(quantity=3)),  # placed: 4 left -> 1
            client.post("/checkout", json=_body(price=PRICE - 1)),  # price_changed
            client.post("/checkout", json=_body(quantity=2)),  # out_of_stock: 1 left
            client.post("/checkout", json=_body(quantity=2), headers={"Idempotency-Key": "k-first"}),  # reused
            client.post("/checkout", json=_body()),  # placed: the last unit
        ]
        tasks = []
        for call in queued:  # one at a time into the lane: arrival order is the order decided
            tasks.append(asyncio.create_task(call))
            await asyncio.sleep(0.02)
        hold.set()
        answers = [await first, *[await t for t in tasks]]
        assert lanes.largest_batch >= len(queued), "the five queued checkouts were one batch"

    assert [r.status_code for r in answers] == [201, 201, 409, 409, 422, 201]
    assert answers[2].json()["code"] == "price_changed"
    assert answers[3].json()["code"] == "out_of_stock"
    assert answers[3].json()["items"] == [{"product_id": PRODUCT, "requested": 2, "available": 1}]
    assert answers[4].json()["code"] == "idempotency_key_reused"
    assert await primary.fetchval("SELECT inventory FROM products WHERE id = $1", PRODUCT) == 0
    ids = [r.json()["order_id"] for r in answers if r.status_code == 201]
    rows = await primary.fetch("SELECT order_id, quantity FROM order_lines WHERE order_id = ANY($1)", ids)
    assert sorted((r["order_id"], r["quantity"]) for r in rows) == sorted(zip(ids, [1, 3, 1], strict=True))

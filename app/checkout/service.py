"""Checkout: the decision path. One primary transaction; nothing from Redis or a replica.

The price the shopper saw is only a claim. Under row locks taken in id order, the primary's
current price and stock decide: a different price is a 409 ``price_changed`` (nothing written),
missing stock a 409 ``out_of_stock``; otherwise stock is taken, the order is written at the
prices charged, and one outbox event per product lets the display caches drop the old stock.
An ``Idempotency-Key`` makes a retried checkout return the first order instead of a second one.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import asyncpg
import msgspec

from app.checkout.schemas import CheckoutLine, Order, OrderLine
from app.contracts.events import EventType
from app.core.db import WritePool
from app.core.doorbell import Doorbell
from app.core.metrics import CHECKOUTS, DB_QUERY_SECONDS
from app.core.problems import Problem
from app.core.sql import queries

Q = queries("checkout")


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    order: Order
    replayed: bool  # True when an earlier request with the same Idempotency-Key placed it
    written: list[tuple[int, int]]  # (product_id, new version), for the read-your-writes token


def request_hash(lines: list[CheckoutLine]) -> bytes:
    """What makes two checkout requests "the same" for an Idempotency-Key: the lines, in any order."""
    canonical = sorted((line.product_id, line.quantity, line.expected_price_cents) for line in lines)
    return hashlib.sha256(msgspec.json.encode(canonical)).digest()


def _reject_duplicates(lines: list[CheckoutLine]) -> None:
    counts: dict[int, int] = {}
    for line in lines:
        counts[line.product_id] = counts.get(line.product_id, 0) + 1
    duplicates = sorted(pid for pid, count in counts.items() if count > 1)
    if duplicates:
        raise Problem(
            422,
            "duplicate_product",
            "each product may appear on one line only; add up the quantities",
            product_ids=duplicates,
        )


class Checkout:
    """Places orders against the primary."""

    def __init__(self, pool: WritePool, doorbell: Doorbell | None) -> None:
        self.pool = pool
        self.doorbell = doorbell

    async def place(self, lines: list[CheckoutLine], idempotency_key: str | None) -> CheckoutResult:
        """Charge the primary's prices, never oversell, and place each keyed request once."""
        _reject_duplicates(lines)
        fingerprint = request_hash(lines)
        started = time.perf_counter()
        async with self.pool.acquire() as conn, conn.transaction():
            if idempotency_key is not None:
                await conn.execute(Q["lock_idempotency_key"], idempotency_key)
                previous = await conn.fetchrow(Q["order_by_key"], idempotency_key)
                if previous is not None:
                    if bytes(previous["request_hash"]) != fingerprint:
                        CHECKOUTS.labels("idempotency_conflict").inc()
                        raise Problem(
                            422,
                            "idempotency_key_reused",
                            "this Idempotency-Key was used for a different checkout",
                        )
                    CHECKOUTS.labels("idempotent_replay").inc()
                    order = await self._order(conn, previous["id"])
                    assert order is not None
                    return CheckoutResult(order, replayed=True, written=[])
            order, written, event_id = await self._charge(conn, lines, idempotency_key, fingerprint)
        if self.doorbell is not None:
            self.doorbell.ring(event_id)  # committed: wake the relays (docs/adr/0016)
        DB_QUERY_SECONDS.labels("primary", "checkout").observe(time.perf_counter() - started)
        CHECKOUTS.labels("ok").inc()
        return CheckoutResult(order, replayed=False, written=written)

    async def _charge(
        self,
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        lines: list[CheckoutLine],
        idempotency_key: str | None,
        fingerprint: bytes,
    ) -> tuple[Order, list[tuple[int, int]], int]:
        """Check and take stock under the row locks; the order, the versions written, the last event's id."""
        ids = sorted(line.product_id for line in lines)
        truth = {row["id"]: row for row in await conn.fetch(Q["lock_products"], ids)}

        missing = [pid for pid in ids if pid not in truth]
        if missing:
            CHECKOUTS.labels("not_found").inc()
            raise Problem(404, "product_not_found", "some products do not exist", product_ids=missing)
        archived = [pid for pid in ids if truth[pid]["archived"]]
        if archived:
            CHECKOUTS.labels("unavailable").inc()
            raise Problem(409, "product_unavailable", "some products are no longer sold", product_ids=archived)
        if any(line.expected_price_cents != truth[line.product_id]["price_cents"] for line in lines):
            CHECKOUTS.labels("price_changed").inc()
            raise Problem(
                409,
                "price_changed",
                "prices changed since they were shown; nothing was charged",
                items=[
                    {
                        "product_id": line.product_id,
                        "expected_price_cents": line.expected_price_cents,
                        "price_cents": truth[line.product_id]["price_cents"],
                        "changed": line.expected_price_cents != truth[line.product_id]["price_cents"],
                    }
                    for line in lines
                ],
            )
        short = [line for line in lines if truth[line.product_id]["inventory"] < line.quantity]
        if short:
            CHECKOUTS.labels("out_of_stock").inc()
            raise Problem(
                409, "out_of_stock", "not enough stock for some lines; nothing was charged",
                items=[
                    {"product_id": line.product_id, "requested": line.quantity,
                     "available": truth[line.product_id]["inventory"]}
                    for line in short
                ],
            )  # fmt: skip
        currencies = {truth[pid]["currency"] for pid in ids}
        if len(currencies) > 1:
            CHECKOUTS.labels("mixed_currency").inc()
            raise Problem(422, "mixed_currency", "one order cannot mix currencies", currencies=sorted(currencies))

        taken = await conn.fetch(Q["take_stock"], [ln.product_id for ln in lines], [ln.quantity for ln in lines])
        assert len(taken) == len(lines), "stock was checked under lock"
        total = sum(line.quantity * truth[line.product_id]["price_cents"] for line in lines)
        currency = currencies.pop()
        header = await conn.fetchrow(Q["insert_order"], idempotency_key, fingerprint, total, currency)
        assert header is not None
        await conn.execute(
            Q["insert_order_lines"], header["id"], list(range(1, len(lines) + 1)),
            [ln.product_id for ln in lines], [ln.quantity for ln in lines],
            [truth[ln.product_id]["price_cents"] for ln in lines],
        )  # fmt: skip
        # One event per product (the contract of app/contracts/events.py, built in SQL).
        event_id: int = await conn.fetchval(
            Q["insert_stock_events"], EventType.INVENTORY_CHANGED, [r["id"] for r in taken],
            [r["version"] for r in taken], [r["category_id"] for r in taken],
        )  # fmt: skip
        order = Order(
            order_id=header["id"],
            items=[
                OrderLine(
                    product_id=ln.product_id, quantity=ln.quantity, price_cents=truth[ln.product_id]["price_cents"]
                )
                for ln in lines
            ],
            total_cents=total,
            currency=currency,
            created_at=header["created_at"],
        )
        return order, [(r["id"], r["version"]) for r in taken], event_id

    async def get_order(self, order_id: int) -> Order | None:
        """A decision read, from the primary."""
        started = time.perf_counter()
        async with self.pool.acquire() as conn:
            order = await self._order(conn, order_id)
        DB_QUERY_SECONDS.labels("primary", "order.get").observe(time.perf_counter() - started)
        return order

    @staticmethod
    async def _order(conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record], order_id: int) -> Order | None:
        header = await conn.fetchrow(Q["get_order"], order_id)
        if header is None:
            return None
        lines = await conn.fetch(Q["get_order_lines"], order_id)
        return Order(
            order_id=header["id"],
            items=[
                OrderLine(product_id=r["product_id"], quantity=r["quantity"], price_cents=r["price_cents"])
                for r in lines
            ],
            total_cents=header["total_cents"],
            currency=header["currency"],
            created_at=header["created_at"],
        )

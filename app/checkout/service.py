"""Checkout: the decision path. Primary transactions only; nothing from Redis or a replica.

The price the shopper saw is only a claim. Under row locks taken in id order, the primary's
current price and stock decide: a different price is a 409 ``price_changed`` (nothing written),
missing stock a 409 ``out_of_stock``; otherwise stock is taken, the order is written at the
prices charged, and one outbox event per product lets the display caches drop the old stock.
An ``Idempotency-Key`` makes a retried checkout return the first order instead of a second one.

Checkouts of the same products are decided in batches (lanes.py, docs/adr/0017): one
transaction locks the rows once, decides each checkout of the batch in arrival order against the
stock the earlier ones left, writes one order per placed checkout (each with its own key and
token) and commits once. Each checkout gets the answer it would have got alone, in that order.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from app.checkout.lanes import Lanes, Waiting
from app.checkout.schemas import CheckoutLine, Order, OrderLine
from app.contracts.events import EventType
from app.core.db import DatabaseUnavailable, WritePool
from app.core.doorbell import Doorbell
from app.core.metrics import CHECKOUTS, DB_QUERY_SECONDS
from app.core.problems import Problem
from app.core.sql import queries

Q = queries("checkout")
MAX_BATCH = 100
if TYPE_CHECKING:  # subscriptable for the type checker only
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    order: Order
    replayed: bool  # True when an earlier request with the same Idempotency-Key placed it
    written: list[tuple[int, int]]  # (product_id, new version), for the read-your-writes token


@dataclass(frozen=True, slots=True)
class _Request:
    lines: list[CheckoutLine]
    key: str | None
    fingerprint: bytes


@dataclass(slots=True)
class _Placed:
    """A checkout of the batch that will become an order once the batch commits."""

    waiting: Waiting[_Request, CheckoutResult]
    order_id: int = 0
    total: int = 0
    currency: str = ""
    prices: dict[int, int] = field(default_factory=dict)


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


def _key_reused() -> Problem:
    CHECKOUTS.labels("idempotency_conflict").inc()
    return Problem(422, "idempotency_key_reused", "this Idempotency-Key was used for a different checkout")


def decide(lines: list[CheckoutLine], truth: dict[int, asyncpg.Record], left: dict[int, int]) -> Problem | None:
    """The answer a checkout gets against the locked rows and the stock the batch has ``left``:
    None to place it, else the problem it is refused with (nothing written for it)."""
    ids = sorted(line.product_id for line in lines)
    missing = [pid for pid in ids if pid not in truth]
    if missing:
        CHECKOUTS.labels("not_found").inc()
        return Problem(404, "product_not_found", "some products do not exist", product_ids=missing)
    archived = [pid for pid in ids if truth[pid]["archived"]]
    if archived:
        CHECKOUTS.labels("unavailable").inc()
        return Problem(409, "product_unavailable", "some products are no longer sold", product_ids=archived)
    if any(line.expected_price_cents != truth[line.product_id]["price_cents"] for line in lines):
        CHECKOUTS.labels("price_changed").inc()
        return Problem(
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
    short = [line for line in lines if left[line.product_id] < line.quantity]
    if short:
        CHECKOUTS.labels("out_of_stock").inc()
        return Problem(
            409, "out_of_stock", "not enough stock for some lines; nothing was charged",
            items=[{"product_id": line.product_id, "requested": line.quantity, "available": left[line.product_id]}
                   for line in short],
        )  # fmt: skip
    currencies = {truth[pid]["currency"] for pid in ids}
    if len(currencies) > 1:
        CHECKOUTS.labels("mixed_currency").inc()
        return Problem(422, "mixed_currency", "one order cannot mix currencies", currencies=sorted(currencies))
    return None


class Checkout:
    """Places orders against the primary, a batch per set of products at a time."""

    def __init__(self, pool: WritePool, doorbell: Doorbell | None, max_batch: int = MAX_BATCH) -> None:
        self.pool = pool
        self.doorbell = doorbell
        self.lanes: Lanes[_Request, CheckoutResult] = Lanes(
            self._run_batch, max_batch, max_queued=pool.max_waiting, wait_s=pool.acquire_timeout_s,
            busy=lambda: DatabaseUnavailable(pool.server, "too many checkouts waiting", unreachable=False),
        )  # fmt: skip

    async def place(self, lines: list[CheckoutLine], idempotency_key: str | None) -> CheckoutResult:
        """Charge the primary's prices, never oversell, and place each keyed request once."""
        _reject_duplicates(lines)
        started = time.perf_counter()
        request = _Request(lines, idempotency_key, request_hash(lines))
        result = await self.lanes.submit(tuple(sorted(line.product_id for line in lines)), request)
        DB_QUERY_SECONDS.labels("primary", "checkout").observe(time.perf_counter() - started)
        return result

    async def _run_batch(self, batch: list[Waiting[_Request, CheckoutResult]]) -> None:
        """One transaction for the batch; each checkout's answer is given once it committed."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                answers, event_id = await self._decide_batch(conn, batch)
            if event_id is not None and self.doorbell is not None:
                self.doorbell.ring(event_id)  # committed: wake the relays (docs/adr/0016)
        for waiting, answer in answers:
            if isinstance(answer, Problem):
                waiting.future.set_exception(answer)
            else:
                waiting.future.set_result(answer)

    async def _decide_batch(
        self, conn: Connection, batch: list[Waiting[_Request, CheckoutResult]]
    ) -> tuple[list[tuple[Waiting[_Request, CheckoutResult], CheckoutResult | Problem]], int | None]:
        keys = sorted({w.item.key for w in batch if w.item.key is not None})
        previous: dict[str, asyncpg.Record] = {}
        if keys:
            await conn.fetchval(Q["lock_idempotency_keys"], keys)
            previous = {r["idempotency_key"]: r for r in await conn.fetch(Q["orders_by_keys"], keys)}
        ids = sorted({line.product_id for w in batch for line in w.item.lines})
        truth = {row["id"]: row for row in await conn.fetch(Q["lock_products"], ids)}
        left = {pid: int(row["inventory"]) for pid, row in truth.items()}
        answers: list[tuple[Waiting[_Request, CheckoutResult], CheckoutResult | Problem | _Placed]] = []
        placed_by_key: dict[str, tuple[bytes, _Placed]] = {}
        placed: list[_Placed] = []
        for waiting in batch:
            request = waiting.item
            if request.key is not None and request.key in previous:
                earlier = previous[request.key]
                if bytes(earlier["request_hash"]) != request.fingerprint:
                    answers.append((waiting, _key_reused()))
                    continue
                CHECKOUTS.labels("idempotent_replay").inc()
                order = await self._order(conn, earlier["id"])
                assert order is not None
                answers.append((waiting, CheckoutResult(order, replayed=True, written=[])))
                continue
            if request.key is not None and request.key in placed_by_key:
                # A retry that caught up with its first attempt in the same batch.
                fingerprint, first = placed_by_key[request.key]
                answers.append((waiting, first if fingerprint == request.fingerprint else _key_reused()))
                continue
            problem = decide(request.lines, truth, left)
            if problem is not None:
                answers.append((waiting, problem))
                continue
            for line in request.lines:
                left[line.product_id] -= line.quantity
            prices = {line.product_id: int(truth[line.product_id]["price_cents"]) for line in request.lines}
            new = _Placed(waiting, total=sum(line.quantity * prices[line.product_id] for line in request.lines),
                          currency=str(truth[request.lines[0].product_id]["currency"]), prices=prices)  # fmt: skip
            placed.append(new)
            answers.append((waiting, new))
            if request.key is not None:
                placed_by_key[request.key] = (request.fingerprint, new)
        results, event_id = await self._write(conn, placed, truth, left) if placed else ({}, None)
        final: list[tuple[Waiting[_Request, CheckoutResult], CheckoutResult | Problem]] = []
        for waiting, answer in answers:
            if isinstance(answer, _Placed):
                replay = answer.waiting is not waiting
                result = results[answer.order_id]
                final.append((waiting, CheckoutResult(result.order, replayed=True, written=[]) if replay else result))
                if replay:
                    CHECKOUTS.labels("idempotent_replay").inc()
            else:
                final.append((waiting, answer))
        return final, event_id

    async def _write(
        self, conn: Connection, placed: list[_Placed], truth: dict[int, asyncpg.Record], left: dict[int, int]
    ) -> tuple[dict[int, CheckoutResult], int]:
        """Take the batch's stock once, write its orders and lines, one stock event per product."""
        taken_total = {pid: int(truth[pid]["inventory"]) - n for pid, n in left.items()}
        moved = sorted(pid for pid, n in taken_total.items() if n > 0)
        taken = await conn.fetch(Q["take_stock"], moved, [taken_total[pid] for pid in moved])
        assert len(taken) == len(moved), "stock was checked under lock"
        order_ids = sorted(int(r["id"]) for r in await conn.fetch(Q["next_order_ids"], len(placed)))
        for order, order_id in zip(placed, order_ids, strict=True):
            order.order_id = order_id
        headers = await conn.fetch(
            Q["insert_orders"], order_ids, [p.waiting.item.key for p in placed],
            [p.waiting.item.fingerprint for p in placed], [p.total for p in placed], [p.currency for p in placed],
        )  # fmt: skip
        created = {int(r["id"]): r["created_at"] for r in headers}
        lines = [(p.order_id, n, line) for p in placed for n, line in enumerate(p.waiting.item.lines, start=1)]
        await conn.execute(
            Q["insert_order_lines"], [o for o, _, _ in lines], [n for _, n, _ in lines],
            [ln.product_id for _, _, ln in lines], [ln.quantity for _, _, ln in lines],
            [truth[ln.product_id]["price_cents"] for _, _, ln in lines],
        )  # fmt: skip
        # One event per product (the contract of app/contracts/events.py, built in SQL).
        event_id: int = await conn.fetchval(
            Q["insert_stock_events"], EventType.INVENTORY_CHANGED, [r["id"] for r in taken],
            [r["version"] for r in taken], [r["category_id"] for r in taken],
        )  # fmt: skip
        versions = {int(r["id"]): int(r["version"]) for r in taken}
        CHECKOUTS.labels("ok").inc(len(placed))
        results = {
            p.order_id: CheckoutResult(
                Order(
                    order_id=p.order_id,
                    items=[
                        OrderLine(product_id=ln.product_id, quantity=ln.quantity, price_cents=p.prices[ln.product_id])
                        for ln in p.waiting.item.lines
                    ],
                    total_cents=p.total,
                    currency=p.currency,
                    created_at=created[p.order_id],
                ),
                replayed=False,
                written=[(ln.product_id, versions[ln.product_id]) for ln in p.waiting.item.lines],
            )
            for p in placed
        }  # fmt: skip
        return results, event_id

    async def get_order(self, order_id: int) -> Order | None:
        """A decision read, from the primary."""
        started = time.perf_counter()
        async with self.pool.acquire() as conn:
            order = await self._order(conn, order_id)
        DB_QUERY_SECONDS.labels("primary", "order.get").observe(time.perf_counter() - started)
        return order

    @staticmethod
    async def _order(conn: Connection, order_id: int) -> Order | None:
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

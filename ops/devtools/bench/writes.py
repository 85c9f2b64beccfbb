"""The write side at flash-sale load, on a durable Postgres (``ops/bench writes``).

The writers run in this process against the scratch servers of ``scratch.py``; one relay
(``catalog relay``, a process of its own) drains the outbox into the scratch Redis the whole
time, as in production where writes and relays share the primary. Per concurrency (1/8/32/64
writers, each a task with a connection of its own):

- ``ceiling``: the admin update's own SQL (row change, outbox row, commit LSN) and nothing else;
- ``notify_in_txn``: the same plus ``pg_notify`` inside the transaction (the shape the article
  draws, and this project's before docs/adr/0016);
- ``service``: ``ProductWrites.update``, the project's own write code, ringing the doorbell;
  while it runs at the highest concurrency a probe (probe.py, a process of its own) times
  COMMIT -> ``product:<id>`` gone;
- ``checkout``: ``Checkout.place`` on distinct products;
- ``flash sale``: ``shoppers`` checkouts of one product with ``stock`` units, ``concurrency``
  at a time: answered per second, p50/p99, orders == stock, oversell 0; once with one
  transaction per checkout (the row lock held through each COMMIT's flush: the convoy), once as
  the service runs it (group commit, docs/adr/0017).

Figures are medians over ``runs``; throughputs are compared as ratios within the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.asyncio import Redis

from app.checkout.schemas import CheckoutLine
from app.checkout.service import Checkout
from app.contracts.events import OUTBOX_CHANNEL, EventType, ProductChanged, encode_event
from app.core.db import WritePool, create_write_pool, init_connection, keep_session
from app.core.doorbell import Doorbell
from app.core.migrate import create_database, migrate
from app.core.problems import Problem
from app.core.settings import DatabaseSettings, RelaySettings
from app.core.sql import queries
from app.seed.seed import seed
from app.writes.service import ProductWrites
from devtools.stack import PROJECT_DIR

Q = queries("catalog")
BENCH_DB = "catalog_bench_writes"
CONCURRENCY = (1, 8, 32, 64)
PROBE_PRODUCTS = 100  # the last ids: only the invalidation probe writes them
WARM_S = 2.0


@dataclass(frozen=True, slots=True)
class Point:
    """One measured point: operations per second and latency percentiles."""

    ops: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def tps(self) -> float:
        return self.ops / self.seconds


@dataclass(frozen=True, slots=True)
class FlashSale:
    shoppers: int
    stock: int
    concurrency: int
    orders: int
    sold_out: int  # answered 409 out_of_stock
    other: int  # any other answer: must be 0
    inventory_after: int
    units_ordered: int  # from order_lines: the truth of what was sold
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.shoppers / self.seconds

    @property
    def oversell(self) -> int:
        return max(0, self.units_ordered - self.stock)


@dataclass(slots=True)
class WritesRun:
    updates: dict[str, dict[int, Point]] = field(default_factory=dict)  # mode -> writers -> point
    checkout: dict[int, Point] = field(default_factory=dict)
    invalidation_ms: list[float] = field(default_factory=list)  # COMMIT -> key gone, under load
    flash: FlashSale | None = None  # the project's checkout: group commit per product
    flash_alone: FlashSale | None = None  # the same code, one transaction per checkout (max_batch=1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else 0.0


async def _drive(writers: int, seconds: float, op: Callable[[int], Awaitable[None]]) -> Point:
    """``writers`` tasks calling ``op(writer)`` back to back for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def writer(index: int) -> None:
        while (now := time.perf_counter()) < deadline:
            await op(index)
            latencies.append(time.perf_counter() - now)

    started = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    elapsed = time.perf_counter() - started
    ms = [v * 1000 for v in latencies]
    return Point(len(latencies), elapsed, percentile(ms, 0.5), percentile(ms, 0.99))


class _Raw:
    """The admin update's SQL on plain connections, with or without NOTIFY in the transaction."""

    def __init__(self, pool: asyncpg.Pool, products: int, *, notify: bool) -> None:
        self.pool = pool
        self.products = products
        self.notify = notify

    async def __call__(self, _writer: int) -> None:
        pid = random.randint(1, self.products)
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                row = await conn.fetchrow(
                    Q["update_product"], pid, None, None, None, None, random.randint(100, 99_999), None, None
                )
                assert row is not None
                event = ProductChanged(id=pid, version=row["version"], category_id=row["category_id"],
                                       old_category_id=row["old_category_id"])  # fmt: skip
                event_id = await conn.fetchval(
                    Q["insert_outbox_event"], EventType.PRODUCT_UPDATED, pid, encode_event(event)
                )
                if self.notify:
                    await conn.execute("SELECT pg_notify($1, $2)", OUTBOX_CHANNEL, str(event_id))
            await conn.fetchval(Q["commit_lsn"])


@contextlib.asynccontextmanager
async def relay_process(dsn: str, redis_url: str) -> AsyncIterator[None]:
    """``catalog relay`` on the scratch servers for as long as the block runs (stopped, reaped)."""
    env = {**os.environ, "CATALOG_PRIMARY_DSN": dsn, "CATALOG_REDIS_URL": redis_url,
           "CATALOG_ADMIN_TOKEN": secrets.token_urlsafe(24), "CATALOG_RYW_SECRET": secrets.token_urlsafe(24),
           "CATALOG_LOG_LEVEL": "warning", "CATALOG_REPLICA_DSNS": ""}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "relay", "--name", "bench-relay", cwd=PROJECT_DIR, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


class ProbeProcess:
    """probe.py beside the load: COMMIT -> key gone, in milliseconds. Started (imports, connections)
    before the clock runs, then told to go: the same instrument load in every mode it watches."""

    def __init__(self, dsn: str, redis_url: str, seconds: float, first: int) -> None:
        self.args = ("-m", "devtools.bench.probe", dsn, redis_url, f"{seconds}", str(first), str(PROBE_PRODUCTS))
        self.proc: asyncio.subprocess.Process | None = None

    async def ready(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_DIR), str(PROJECT_DIR / "ops")])}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *self.args, cwd=PROJECT_DIR, env=env,
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None
        if (await self.proc.stdout.readline()).strip() != b"ready":
            await self.proc.wait()
            raise RuntimeError(f"the invalidation probe failed to start ({self.proc.returncode}); see its error above")

    async def measure(self) -> list[float]:
        assert self.proc is not None
        out, _ = await self.proc.communicate(b"go\n")
        if self.proc.returncode != 0:
            raise RuntimeError(f"the invalidation probe failed ({self.proc.returncode}); see its error above")
        return [float(v) for v in json.loads(out)]


async def _flash_sale(checkout: Checkout, conn: asyncpg.Connection[Any], *, product: int, shoppers: int,
                      stock: int, concurrency: int) -> FlashSale:  # fmt: skip
    await conn.execute("UPDATE products SET inventory = $2 WHERE id = $1", product, stock)
    price = int(await conn.fetchval("SELECT price_cents FROM products WHERE id = $1", product))
    before = int(await conn.fetchval("SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE product_id = $1",
                                     product))  # fmt: skip
    gate = asyncio.Semaphore(concurrency)
    answers: list[str] = []
    latencies: list[float] = []

    async def shopper() -> None:
        line = CheckoutLine(product_id=product, quantity=1, expected_price_cents=price)
        async with gate:
            started = time.perf_counter()
            try:
                await checkout.place([line], str(uuid.uuid4()))
                answers.append("order")
            except Problem as problem:
                answers.append(problem.code)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(shopper() for _ in range(shoppers)))
    elapsed = time.perf_counter() - started
    sold = int(await conn.fetchval("SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE product_id = $1",
                                   product)) - before  # fmt: skip
    return FlashSale(
        shoppers=shoppers, stock=stock, concurrency=concurrency, orders=answers.count("order"),
        sold_out=answers.count("out_of_stock"), other=len(answers) - answers.count("order")
        - answers.count("out_of_stock"),
        inventory_after=int(await conn.fetchval("SELECT inventory FROM products WHERE id = $1", product)),
        units_ordered=sold, seconds=elapsed, p50_ms=percentile(latencies, 0.5), p99_ms=percentile(latencies, 0.99),
    )  # fmt: skip


async def _warm(pool: WritePool, connections: int) -> None:
    """Open ``connections`` of the pool at once (it connects on first use)."""
    held = asyncio.Event()
    ready = 0

    async def hold() -> None:
        nonlocal ready
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
            ready += 1
            if ready == connections:
                held.set()
            await held.wait()

    await asyncio.gather(*(hold() for _ in range(connections)))


async def _prices(conn: asyncpg.Connection[Any]) -> dict[int, int]:
    return {int(r["id"]): int(r["price_cents"]) for r in await conn.fetch("SELECT id, price_cents FROM products")}


async def one_run(admin_dsn: str, redis_url: str, *, products: int, seconds: float, shoppers: int, stock: int,
                  flash_concurrency: int, rotate: int = 0) -> WritesRun:  # fmt: skip
    """Every measurement once, on a freshly seeded catalog."""
    dsn = await create_database(admin_dsn, BENCH_DB, replace=True)
    await migrate(dsn)
    await seed(dsn, products=products, categories=16, show_progress=False)
    top = max(CONCURRENCY)
    settings = DatabaseSettings(primary_dsn=dsn, pool_max_size=top + 4, max_waiting=4 * top)
    pool: WritePool = await create_write_pool(settings)
    # Released as the service's pools release (keep_session: no reset query), so the ceiling pays
    # for the update's own SQL and nothing else.
    raw = await asyncpg.create_pool(dsn, min_size=top, max_size=top, init=init_connection, reset=keep_session)
    await _warm(pool, top)  # connected before the clock runs, as the raw pool is (min_size)
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    stop = asyncio.Event()
    doorbell = Doorbell(dsn, OUTBOX_CHANNEL, interval_s=RelaySettings().doorbell_interval_ms / 1000)
    side = [asyncio.create_task(doorbell.run(stop))]
    relay = relay_process(dsn, redis_url)
    await relay.__aenter__()
    writes = ProductWrites(pool, doorbell)
    checkout = Checkout(pool, doorbell)
    run = WritesRun()
    admin = await asyncpg.connect(dsn)
    try:
        writable = products - PROBE_PRODUCTS

        async def service(_writer: int) -> None:
            await writes.update(random.randint(1, writable), {"price_cents": random.randint(100, 99_999)}, None)

        modes: dict[str, Callable[[int], Awaitable[None]]] = {
            "ceiling": _Raw(raw, writable, notify=False),
            "notify_in_txn": _Raw(raw, writable, notify=True),
            "service": service,
        }
        await _measure_updates(run, modes, seconds, rotate, probe=lambda: ProbeProcess(dsn, redis_url, seconds,
                                                                                    writable + 1))  # fmt: skip
        await _measure_checkouts(run, checkout, admin, products, seconds)
        alone = Checkout(pool, doorbell, max_batch=1)
        run.flash_alone = await _flash_sale(alone, admin, product=products - 1, shoppers=shoppers, stock=stock,
                                            concurrency=flash_concurrency)  # fmt: skip
        run.flash = await _flash_sale(checkout, admin, product=products, shoppers=shoppers, stock=stock,
                                      concurrency=flash_concurrency)  # fmt: skip
    finally:
        stop.set()
        await asyncio.gather(*side, return_exceptions=True)
        await relay.__aexit__(None, None, None)
        await admin.close()
        await raw.close()
        await pool.close()
        await redis.aclose()
    return run


async def _measure_updates(run: WritesRun, modes: dict[str, Callable[[int], Awaitable[None]]], seconds: float,
                           rotate: int, probe: Callable[[], ProbeProcess]) -> None:  # fmt: skip
    top = max(CONCURRENCY)
    # Warm: the first writes after the seed's checkpoint pay full-page images and cold pages; and
    # each connection of each pool prepares its statements on first use (64 at once: a stall of
    # half a second that would land in whichever mode first ran at the top concurrency).
    await _drive(top, seconds, modes["ceiling"])
    for op in modes.values():
        await _drive(top, WARM_S, op)
    order = list(modes)[rotate % len(modes) :] + list(modes)[: rotate % len(modes)]
    for writers in CONCURRENCY:
        # A different order each run: no mode always measured first (the coldest) or last.
        order = order[1:] + order[:1]
        for mode in order:
            if writers != top:
                run.updates.setdefault(mode, {})[writers] = await _drive(writers, seconds, modes[mode])
                continue
            # At the top concurrency the probe writes and watches beside every mode (the same
            # instrument load for each); its latencies count from the service's run.
            watching = probe()
            await watching.ready()
            measured = asyncio.create_task(watching.measure())
            run.updates.setdefault(mode, {})[writers] = await _drive(writers, seconds, modes[mode])
            latencies = await measured
            if mode == "service":
                run.invalidation_ms = latencies


async def _measure_checkouts(
    run: WritesRun, checkout: Checkout, admin: asyncpg.Connection[Any], products: int, seconds: float
) -> None:
    await admin.execute("UPDATE products SET inventory = 1000000")
    prices = await _prices(admin)

    def buyer(writers: int) -> Callable[[int], Awaitable[None]]:
        per_writer = (products - 1) // writers

        async def buy(writer: int) -> None:
            pid = 1 + writer * per_writer + random.randrange(per_writer)  # a slice of its own
            line = CheckoutLine(product_id=pid, quantity=1, expected_price_cents=prices[pid])
            await checkout.place([line], None)

        return buy

    top = max(CONCURRENCY)
    await _drive(top, WARM_S, buyer(top))  # every connection prepares the checkout's statements
    for writers in CONCURRENCY:
        run.checkout[writers] = await _drive(writers, seconds, buyer(writers))


def median_point(points: list[Point]) -> dict[str, float]:
    return {
        "tps": statistics.median(p.tps for p in points),
        "p50_ms": statistics.median(p.p50_ms for p in points),
        "p99_ms": statistics.median(p.p99_ms for p in points),
    }

"""Demo data: categories and products loaded with COPY, deterministic for a given ``--seed``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.seed.vocabulary import ADJECTIVES, AUDIENCES, BRANDS, CATEGORIES, FEATURES, MATERIALS

PRODUCT_COLUMNS = ("sku", "name", "description", "category_id", "price_cents", "currency", "inventory")


@dataclass(frozen=True, slots=True)
class SeedResult:
    categories: int
    products: int
    skipped: bool
    orders: int = 0


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def category_rows(count: int) -> list[tuple[int, str, str]]:
    """``count`` categories; past the base vocabulary they become numbered sub-ranges."""
    base = list(CATEGORIES)
    rows = []
    for i in range(count):
        name = base[i % len(base)] if i < len(base) else f"{base[i % len(base)]} {i // len(base) + 1}"
        rows.append((i + 1, _slug(name), name))
    return rows


def product_records(count: int, categories: list[tuple[int, str, str]], seed: int) -> Iterator[tuple[object, ...]]:
    """Product rows with searchable names and descriptions, in COPY column order."""
    rng = random.Random(seed)
    base_names = list(CATEGORIES)
    for n in range(1, count + 1):
        category_id, _, cat_name = categories[rng.randrange(len(categories))]
        nouns = CATEGORIES[base_names[(category_id - 1) % len(base_names)]]
        noun, adjective, material, brand = (
            rng.choice(nouns),
            rng.choice(ADJECTIVES),
            rng.choice(MATERIALS),
            rng.choice(BRANDS),
        )
        name = f"{brand} {adjective} {material} {noun}"
        first = rng.randrange(len(FEATURES))  # two distinct features, cheaper than rng.sample
        f1, f2 = FEATURES[first], FEATURES[(first + 1 + rng.randrange(len(FEATURES) - 1)) % len(FEATURES)]
        description = (
            f"A {adjective.lower()} {noun.lower()} in {material.lower()} from {brand}, {f1}. "
            f"Popular with {rng.choice(AUDIENCES)}; {f2}. Part of our {cat_name.lower()} range."
        )
        price_cents = int(rng.lognormvariate(8.0, 0.9)) // 100 * 100 + 99
        inventory = rng.choice((0, 3, 12, 25, 40, 80, 150, 400))
        yield (f"SKU-{n:08d}", name, description, category_id, price_cents, "USD", inventory)


# From this many products on, load with two COPY streams and build the search indexes at the end.
BULK_THRESHOLD = 100_000
# The typo lexicon (sql/migrations/0004_search_words.sql): its insert trigger, and filling it at once.
_SEARCH_WORDS_TRIGGER = "products_search_words_insert"
_FILL_SEARCH_WORDS = "SELECT add_search_words_v1(ARRAY(SELECT name FROM products))"


async def seed(
    dsn: str,
    *,
    products: int,
    categories: int,
    seed_value: int = 42,
    only_if_empty: bool = True,
    batch_size: int = 20_000,
    show_progress: bool = True,
) -> SeedResult:
    """Load demo data with COPY. With ``only_if_empty`` an existing catalog is left alone."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "catalog.ops"})
    try:
        has_products = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM products)")
        if only_if_empty and has_products:
            return SeedResult(0, 0, skipped=True)
        cats = category_rows(categories)
        new_categories = not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM categories)")
        order_count = min(max(products // 2, 100), 100_000)
        with Progress(
            TextColumn("seeding products"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            # On stderr: a report or JSON on stdout stays clean (``ops/bench seed --json``).
            console=Console(stderr=True),
            disable=not show_progress,
        ) as progress:
            task = progress.add_task("products", total=products)

            def advance(count: int) -> None:
                progress.advance(task, count)

            if not has_products and products >= BULK_THRESHOLD:
                orders = await _bulk_load(
                    dsn,
                    conn,
                    cats=cats if new_categories else [],
                    products=products,
                    seed_value=seed_value,
                    batch_size=batch_size,
                    order_count=order_count,
                    advance=advance,
                )
            else:
                async with conn.transaction():
                    if new_categories:
                        await _insert_categories(conn, cats)
                    for batch in _batches(product_records(products, cats, seed_value), batch_size):
                        await conn.copy_records_to_table("products", records=batch, columns=PRODUCT_COLUMNS)
                        advance(len(batch))
                    orders = await _seed_orders(conn, order_count, seed_value)
        await conn.execute("ANALYZE categories; ANALYZE products; ANALYZE orders; ANALYZE order_lines")
        return SeedResult(len(cats), products, skipped=False, orders=orders)
    finally:
        await conn.close()


def _batches(records: Iterator[tuple[object, ...]], size: int) -> Iterator[list[tuple[object, ...]]]:
    batch: list[tuple[object, ...]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _insert_categories(conn: asyncpg.Connection, cats: list[tuple[int, str, str]]) -> None:
    await conn.copy_records_to_table("categories", records=cats, columns=("id", "slug", "name"))
    await conn.execute("SELECT setval(pg_get_serial_sequence('categories', 'id'), $1)", len(cats))


async def _bulk_load(
    dsn: str,
    conn: asyncpg.Connection,
    *,
    cats: list[tuple[int, str, str]],
    products: int,
    seed_value: int,
    batch_size: int,
    order_count: int,
    advance: Callable[[int], None],
) -> int:
    """An empty catalog, fast: the search vectors are computed by two COPY backends in parallel
    while this process generates the next batch, and the search indexes are built once, at the
    end, in parallel with the orders. Not one transaction: a failure leaves the tables to be
    truncated, but never leaves an index missing.
    """
    all_categories = cats or category_rows(int(await conn.fetchval("SELECT count(*) FROM categories")))
    async with conn.transaction():
        if cats:
            await _insert_categories(conn, cats)
        deferred = await _drop_secondary_indexes(conn)
        # Two long COPY transactions adding the same new words would wait on each other's unique
        # keys (and deadlock): the typo lexicon is filled once, after the COPY, instead.
        await conn.execute(f"ALTER TABLE products DISABLE TRIGGER {_SEARCH_WORDS_TRIGGER}")
    catch_up = [_FILL_SEARCH_WORDS, f"ALTER TABLE products ENABLE TRIGGER {_SEARCH_WORDS_TRIGGER}"]
    try:
        workers = [await asyncpg.connect(dsn, server_settings={"application_name": "catalog.ops"}) for _ in range(2)]
        try:
            queues: list[asyncio.Queue[list[tuple[object, ...]] | None]] = [asyncio.Queue(maxsize=2) for _ in workers]

            async def stream(worker: asyncpg.Connection, queue: asyncio.Queue[list[tuple[object, ...]] | None]) -> None:
                async with worker.transaction():
                    while (batch := await queue.get()) is not None:
                        await worker.copy_records_to_table("products", records=batch, columns=PRODUCT_COLUMNS)
                        advance(len(batch))

            streams = [asyncio.create_task(stream(w, q)) for w, q in zip(workers, queues, strict=True)]
            for i, batch in enumerate(_batches(product_records(products, all_categories, seed_value), batch_size)):
                await queues[i % len(queues)].put(batch)
                for task in streams:
                    if task.done():
                        task.result()  # surface a failed stream now, not after generating everything
            for queue in queues:
                await queue.put(None)
            await asyncio.gather(*streams)

            async def build(worker: asyncpg.Connection, definitions: list[str]) -> None:
                await worker.execute("SET maintenance_work_mem = '256MB'")
                for definition in definitions:
                    await worker.execute(definition)

            async def orders() -> int:
                async with conn.transaction():
                    return await _seed_orders(conn, order_count, seed_value)

            # GIN builds are single-threaded: one per connection, beside the orders and the lexicon.
            results = await asyncio.gather(
                build(workers[0], deferred[0::2]), build(workers[1], deferred[1::2] + catch_up), orders()
            )
            deferred, catch_up = [], []
            return int(results[2])
        finally:
            for worker in workers:
                await worker.close()
    finally:
        for definition in deferred:  # only on failure: put back whatever was dropped
            await conn.execute(definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        for statement in catch_up:  # and the lexicon with its trigger
            await conn.execute(statement)


async def _seed_orders(conn: asyncpg.Connection, count: int, seed_value: int) -> int:
    """Past orders, so top sellers and co-purchase recommendations have something to show.

    Each order stays within one category and favours that category's first products, which gives
    a skewed best-seller list and repeated co-purchases.
    """
    rng = random.Random(seed_value + 1)
    by_category: dict[int, list[tuple[int, int]]] = {}
    for row in await conn.fetch("SELECT id, category_id, price_cents FROM products WHERE NOT archived ORDER BY id"):
        by_category.setdefault(row["category_id"], []).append((row["id"], row["price_cents"]))
    if not by_category:
        return 0
    categories = sorted(by_category)
    first_id = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM orders")) + 1
    now = datetime.now(UTC)
    orders: list[tuple[object, ...]] = []
    lines: list[tuple[object, ...]] = []
    for order_id in range(first_id, first_id + count):
        candidates = by_category[categories[int(len(categories) * rng.random() ** 2)]]
        picked: dict[int, int] = {}
        for _ in range(rng.randint(1, 4)):
            product_id, price = candidates[int(len(candidates) * rng.random() ** 3)]
            picked[product_id] = price
        total = 0
        for line_no, (product_id, price) in enumerate(picked.items(), start=1):
            quantity = rng.choice((1, 1, 1, 2, 3))
            total += quantity * price
            lines.append((order_id, line_no, product_id, quantity, price))
        created = now - timedelta(seconds=rng.uniform(0, 29 * 86400))
        orders.append((order_id, total, "USD", created))
    await conn.copy_records_to_table("orders", records=orders, columns=("id", "total_cents", "currency", "created_at"))
    await conn.copy_records_to_table(
        "order_lines", records=lines, columns=("order_id", "line_no", "product_id", "quantity", "price_cents")
    )
    await conn.execute("SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders))")
    return count


async def _drop_secondary_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop the products indexes that back no constraint; returns their definitions to rebuild.

    The definitions come from the catalog itself, so the rebuilt indexes are exactly the
    migrated ones (no second copy of the DDL to drift).
    """
    rows = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
           FROM pg_index AS i
           WHERE i.indrelid = 'products'::regclass AND NOT i.indisprimary AND NOT i.indisunique"""
    )
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [row["definition"] for row in rows]

"""Demo data: categories and products loaded with COPY, deterministic for a given ``--seed``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
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
        f1, f2 = rng.sample(FEATURES, 2)
        description = (
            f"A {adjective.lower()} {noun.lower()} in {material.lower()} from {brand}, {f1}. "
            f"Popular with {rng.choice(AUDIENCES)}; {f2}. Part of our {cat_name.lower()} range."
        )
        price_cents = int(rng.lognormvariate(8.0, 0.9)) // 100 * 100 + 99
        inventory = rng.choice((0, 3, 12, 25, 40, 80, 150, 400))
        yield (f"SKU-{n:08d}", name, description, category_id, price_cents, "USD", inventory)


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
        if only_if_empty and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM products)"):
            return SeedResult(0, 0, skipped=True)
        cats = category_rows(categories)
        empty = not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM products)")
        async with conn.transaction():
            # Into an empty table, build the search indexes once at the end instead of row by row.
            deferred = await _drop_secondary_indexes(conn) if empty else []
            await conn.copy_records_to_table("categories", records=cats, columns=("id", "slug", "name"))
            await conn.execute("SELECT setval(pg_get_serial_sequence('categories', 'id'), $1)", len(cats))
            with Progress(
                TextColumn("seeding products"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                disable=not show_progress,
            ) as progress:
                task = progress.add_task("products", total=products)
                batch: list[tuple[object, ...]] = []
                for record in product_records(products, cats, seed_value):
                    batch.append(record)
                    if len(batch) >= batch_size:
                        await conn.copy_records_to_table("products", records=batch, columns=PRODUCT_COLUMNS)
                        progress.advance(task, len(batch))
                        batch = []
                if batch:
                    await conn.copy_records_to_table("products", records=batch, columns=PRODUCT_COLUMNS)
                    progress.advance(task, len(batch))
            if deferred:
                await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
                await conn.execute("SET LOCAL max_parallel_maintenance_workers = 2")
                for definition in deferred:
                    await conn.execute(definition)
            orders = await _seed_orders(conn, min(max(products // 2, 100), 100_000), seed_value)
        await conn.execute("ANALYZE categories; ANALYZE products; ANALYZE orders; ANALYZE order_lines")
        return SeedResult(len(cats), products, skipped=False, orders=orders)
    finally:
        await conn.close()


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

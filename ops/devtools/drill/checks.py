"""What the drill measures around a fault: how soon the service is usable again, how soon the
outbox caught up, whether the stack settled, and whether anything stale was left behind.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import httpx

from app.admin_cli.cache_check import check_cache
from app.core.db import CONNECTION_ERRORS, lsn_to_int
from app.core.sql import queries

OUTBOX = queries("outbox")
POLL_S = 0.1
# A mismatching read is retried for this long: an instance's near cache hears invalidations
# through its relay connection, and may keep an entry up to its TTL (2 s) when it missed one.
SETTLE_S = 3.0
DB_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


async def poll_until(check: Callable[[], Awaitable[bool]], deadline: float, interval_s: float = POLL_S) -> bool:
    """Call ``check`` every ``interval_s`` until it is true (True) or ``deadline`` passes (False)."""
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_s)


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        dsn, timeout=2.0, server_settings={"application_name": "catalog.ops"}
    )
    try:
        yield conn
    finally:
        await conn.close(timeout=2.0)


async def probe_recovery(url: str, admin_token: str, product_id: int, started: float, bound_s: float) -> float | None:
    """Seconds from ``started`` (the recover action) until a write succeeds and the writer's next
    read shows it, polled every 100 ms on a client of its own; None if not within ``bound_s``.
    """
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=2.0) as client:
        while time.monotonic() - started < bound_s:
            try:
                written = await client.patch(
                    f"/products/{product_id}", json={"price_cents": random.randrange(99, 9999)}
                )
                if written.is_success:
                    version = int(written.json()["version"])
                    read = await client.get(f"/products/{product_id}")
                    if read.status_code == 200 and int(read.json()["version"]) >= version:
                        return round(time.monotonic() - started, 3)
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            await asyncio.sleep(POLL_S)
    return None


async def _processed_up_to(conn: asyncpg.Connection[asyncpg.Record], mark: int) -> bool:
    pending = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE id <= $1)", mark)
    return not pending


async def watch_drain(dsn: str, started: float, probe: asyncio.Task[float | None], bound_s: float) -> float | None:
    """Seconds from ``started`` until every outbox event committed up to the first write after
    recovery (the probe's) is processed; None if not within ``bound_s``.

    Under load ``pending == 0`` is true for a moment between any two writes, so the drill waits for
    a mark instead: events stranded by the fault sit below it, and so does the first event written
    after it, which waits for any relay that is still reconnecting.
    """
    deadline = started + bound_s
    await asyncio.wait([probe], timeout=max(0.0, deadline - time.monotonic()))
    mark: int | None = None
    while time.monotonic() < deadline:
        try:
            async with connect(dsn) as conn:
                if mark is None:
                    mark = int(
                        await conn.fetchval(
                            "SELECT greatest((SELECT max(id) FROM outbox),"
                            " (SELECT max(last_event_id) FROM outbox_processed), 0)"
                        )
                    )
                if await poll_until(functools.partial(_processed_up_to, conn, mark), deadline):
                    return round(time.monotonic() - started, 3)
        except DB_ERRORS:
            await asyncio.sleep(POLL_S * 2)
    return None


async def _no_pending(conn: asyncpg.Connection[asyncpg.Record]) -> bool:
    row = await conn.fetchrow(OUTBOX["backlog"])
    return row is not None and row["pending"] == 0


async def _replayed(replica: asyncpg.Connection[asyncpg.Record], target: int) -> bool:
    lsn = await replica.fetchval("SELECT pg_last_wal_replay_lsn()::text")
    return lsn is not None and lsn_to_int(lsn) >= target


async def quiesce(primary_dsn: str, replica_dsn: str, bound_s: float) -> list[str]:
    """Wait until nothing is pending in the outbox and the replica has replayed the primary's WAL
    position (taken once the outbox is empty); returns what did not settle within ``bound_s``.
    """
    deadline = time.monotonic() + bound_s
    drained = replayed = False
    while time.monotonic() < deadline and not replayed:
        try:
            async with connect(primary_dsn) as primary, connect(replica_dsn) as replica:
                drained = await poll_until(functools.partial(_no_pending, primary), deadline)
                if not drained:
                    break
                target = lsn_to_int(await primary.fetchval("SELECT pg_current_wal_lsn()::text"))
                replayed = await poll_until(functools.partial(_replayed, replica, target), deadline)
        except DB_ERRORS:
            await asyncio.sleep(POLL_S * 2)
    if not drained:
        return [f"outbox still pending after {bound_s:.0f} s"]
    if not replayed:
        return [f"replica behind after {bound_s:.0f} s"]
    return []


@dataclass
class StaleReport:
    checked: int = 0
    stale: int = 0  # products some instance serves older than the primary, plus stale Redis entries
    unreadable: int = 0
    examples: list[str] = field(default_factory=list)


async def _versions(client: httpx.AsyncClient, ids: list[int], limit: asyncio.Semaphore) -> dict[int, int | None]:
    async def one(product_id: int) -> tuple[int, int | None]:
        async with limit:
            try:
                response = await client.get(f"/products/{product_id}")
                return product_id, int(response.json()["version"]) if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, KeyError):
                return product_id, None

    return dict(await asyncio.gather(*(one(i) for i in ids)))


async def stale_products(
    app_urls: list[str], primary_dsn: str, redis_url: str, product_ids: set[int], *, redis_cluster: bool = False
) -> StaleReport:
    """Read every product directly from each instance (no cookie) and compare with the primary,
    retrying a mismatch for :data:`SETTLE_S`; then compare every Redis entry (``check_cache``).
    """
    async with connect(primary_dsn) as conn:
        rows = await conn.fetch(
            "SELECT id, version FROM products WHERE id = ANY($1::bigint[]) AND NOT archived", sorted(product_ids)
        )
    truth = {int(r["id"]): int(r["version"]) for r in rows}
    report = StaleReport(checked=len(truth))
    limit = asyncio.Semaphore(16)
    stale_ids: set[int] = set()
    for url in app_urls:
        async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
            todo = list(truth)
            deadline = time.monotonic() + SETTLE_S
            while True:
                seen = await _versions(client, todo, limit)
                todo = [i for i, v in seen.items() if v is None or v < truth[i]]
                if not todo or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.5)
        for product_id in todo:
            version = seen[product_id]
            if version is None:
                report.unreadable += 1
                continue
            stale_ids.add(product_id)
            if len(report.examples) < 5:
                report.examples.append(
                    f"{url} serves product {product_id} v{version}, primary has v{truth[product_id]}"
                )
    cache = await check_cache(primary_dsn, redis_url, cluster=redis_cluster)
    report.stale = len(stale_ids) + int(cache["stale"])
    report.examples.extend(f"redis: {e}" for e in cache["examples"][: max(0, 5 - len(report.examples))])
    return report

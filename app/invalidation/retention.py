"""Outbox housekeeping: processed batches are kept for inspection, then deleted a few at a time."""

from __future__ import annotations

import asyncpg

from app.core.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING
from app.core.sql import queries

Q = queries("outbox")
PURGE_BATCH = 10_000


async def purge_processed(
    conn: asyncpg.Connection[asyncpg.Record], older_than_s: float, batch_size: int = PURGE_BATCH
) -> int:
    """Delete processed events older than ``older_than_s``, ``batch_size`` at a time; returns how many."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    total = 0
    while True:
        # Whole batches (outbox_processed rows) go, about ``batch_size`` events per statement.
        row = await conn.fetchrow(Q["purge_processed"], float(older_than_s), batch_size)
        deleted = 0 if row is None else int(row["events"])
        total += deleted
        if deleted < batch_size:  # it took every old batch there was
            return total


async def record_backlog(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Publish the pending count and the oldest pending event's age as gauges."""
    row = await conn.fetchrow(Q["backlog"])
    if row is not None:
        OUTBOX_PENDING.set(row["pending"])
        OUTBOX_OLDEST_AGE.set(row["oldest_pending_age_seconds"])

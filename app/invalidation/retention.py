"""Outbox housekeeping: processed batches are kept for inspection, then deleted a few at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from app.core.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING
from app.core.sql import queries

Q = queries("outbox")
PURGE_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Purged:
    events: int
    statements: int
    complete: bool  # False: stopped at the time bound, older events are left


async def purge_processed(
    conn: asyncpg.Connection[asyncpg.Record], older_than_s: float, batch_size: int = PURGE_BATCH
) -> int:
    """Delete processed events older than ``older_than_s``, ``batch_size`` at a time; returns how many."""
    return (await purge_processed_within(conn, older_than_s, batch_size)).events


async def purge_processed_within(
    conn: asyncpg.Connection[asyncpg.Record],
    older_than_s: float,
    batch_size: int = PURGE_BATCH,
    *,
    max_seconds: float | None = None,
    on_statement: Callable[[int, int], None] | None = None,
) -> Purged:
    """:func:`purge_processed`, stopping after ``max_seconds`` (between statements) and telling
    ``on_statement(events so far, statements so far)`` after each statement."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    total = statements = 0
    while True:
        # Whole batches (outbox_processed rows) go, about ``batch_size`` events per statement.
        row = await conn.fetchrow(Q["purge_processed"], float(older_than_s), batch_size)
        deleted = 0 if row is None else int(row["events"])
        total += deleted
        statements += 1
        if on_statement is not None:
            on_statement(total, statements)
        if deleted < batch_size:  # it took every old batch there was
            return Purged(total, statements, complete=True)
        if deadline is not None and time.monotonic() >= deadline:
            return Purged(total, statements, complete=False)


async def record_backlog(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Publish the pending count and the oldest pending event's age as gauges."""
    row = await conn.fetchrow(Q["backlog"])
    if row is not None:
        OUTBOX_PENDING.set(row["pending"])
        OUTBOX_OLDEST_AGE.set(row["oldest_pending_age_seconds"])

"""Where a display read goes: a replica when one is usable, else the primary (read-only session).

A replica that fails a read is skipped for ``replica_retry_after_s`` and the read is retried
once on the primary, so a replica going down costs one slow read, not an error page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
import structlog

from app.core.db import CONNECTION_ERRORS, ReadPool

ReadSource = Literal["replica", "primary"]
log = structlog.get_logger("catalog.reads")


@dataclass(slots=True)
class Replica:
    name: str
    pool: ReadPool
    skip_until: float = 0.0

    def usable(self, now: float) -> bool:
        return now >= self.skip_until


@dataclass(slots=True)
class ReadRouter:
    """Chooses the pool for each display read and falls back to the primary on replica failure."""

    primary: ReadPool
    replicas: list[Replica] = field(default_factory=list)
    retry_after_s: float = 1.0
    _next: int = 0

    def _pick_replica(self) -> Replica | None:
        now = time.monotonic()
        count = len(self.replicas)
        for offset in range(count):
            replica = self.replicas[(self._next + offset) % count]
            if replica.usable(now):
                self._next = (self._next + offset + 1) % count
                return replica
        return None

    async def fetchrow(self, query: str, *args: Any) -> tuple[asyncpg.Record | None, ReadSource, str]:
        """Run a one-row display query; returns the row, where it was served from, and why."""
        replica = self._pick_replica()
        reason = "no-replica" if not self.replicas else "replica-down"
        if replica is not None:
            try:
                return await replica.pool.fetchrow(query, *args), "replica", "miss"
            except CONNECTION_ERRORS as exc:
                replica.skip_until = time.monotonic() + self.retry_after_s
                log.warning("reads.replica_failed", replica=replica.name, error=type(exc).__name__)
        return await self.primary.fetchrow(query, *args), "primary", reason

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.pool.close()
        await self.primary.close()

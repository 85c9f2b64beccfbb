"""Where a display read goes: a replica when one is healthy and fresh enough, else the primary.

The replicas' state (up, replay LSN, lag) is kept fresh by :mod:`app.fastpath.replica_monitor`;
routing reads it and never queries anything itself.

A replica is eligible when its last poll succeeded recently and its lag is within
``max_replica_lag``; a reader with a read-your-writes token additionally needs the replica's
replay LSN to have reached the token's commit LSN. A read that fails on a replica is retried
once on the primary (a ``ReadPool``: read-only sessions), and that replica sits out a while.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import asyncpg
import structlog

from app.core.db import CONNECTION_ERRORS, ReadPool
from app.core.metrics import DB_QUERY_SECONDS

T = TypeVar("T")
ReadSource = Literal["replica", "primary"]
log = structlog.get_logger("catalog.reads")

_REPLICA_QUERY_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.QueryCanceledError,  # statement timeout, or canceled by a recovery conflict
    asyncpg.SerializationError,  # recovery conflict (40001)
)
# A replica whose last good poll is older than this is treated as down.
STALE_POLL_S = 1.0


@dataclass(slots=True)
class Replica:
    name: str
    dsn: str
    pool: ReadPool
    up: bool = False
    replay_lsn: int = 0
    lag_s: float = float("inf")
    last_ok: float = 0.0  # monotonic time of the last successful poll
    skip_until: float = 0.0  # after a failed read: sit out until then

    def healthy(self, now: float) -> bool:
        return self.up and now - self.last_ok < STALE_POLL_S and now >= self.skip_until


@dataclass(frozen=True, slots=True)
class Route:
    pool: ReadPool
    source: ReadSource
    reason: str  # "replica" when a replica serves; else why the primary does
    replica: Replica | None
    replay_lsn: int = 0  # the replica's replay position known when it was chosen (a lower bound)

    def has_replayed(self, lsn: int) -> bool:
        """Did the data this route served include everything up to ``lsn``?"""
        return self.source == "primary" or self.replay_lsn >= lsn


@dataclass(slots=True)
class ReadRouter:
    """Chooses the pool for each display read from the monitor's latest view."""

    primary: ReadPool
    replicas: list[Replica] = field(default_factory=list)
    max_lag_s: float = 1.0
    retry_after_s: float = 1.0
    _next: int = 0

    def route(self, min_lsn: int = 0) -> Route:
        """A healthy replica within the lag bound (and past ``min_lsn``), else the primary and why."""
        if not self.replicas:
            return Route(self.primary, "primary", "no-replica", None)
        now = time.monotonic()
        count = len(self.replicas)
        reason = "replica-down"
        for offset in range(count):
            replica = self.replicas[(self._next + offset) % count]
            if not replica.healthy(now):
                continue
            if replica.lag_s > self.max_lag_s:
                reason = "lag" if reason == "replica-down" else reason
                continue
            if replica.replay_lsn < min_lsn:
                reason = "ryw"
                continue
            self._next = (self._next + offset + 1) % count
            return Route(replica.pool, "replica", "replica", replica, replica.replay_lsn)
        return Route(self.primary, "primary", reason, None)

    async def run(
        self, endpoint: str, work: Callable[[ReadPool], Awaitable[T]], *, min_lsn: int = 0
    ) -> tuple[T, Route]:
        """Run ``work`` on the chosen pool; a replica failure retries once on the primary.

        Database time is recorded per pool and per endpoint (the policy name), for ops/hotpath.
        """
        chosen = self.route(min_lsn)
        replica = chosen.replica
        if replica is not None:
            started = time.perf_counter()
            try:
                result = await work(chosen.pool)
            except asyncpg.DataError:
                raise  # a value the query cannot take: bad input, not a sick replica
            except _REPLICA_QUERY_ERRORS as exc:
                # A recovery conflict or timeout on the replica: answer from the primary this once.
                log.warning("reads.replica_query_failed", replica=replica.name, error=type(exc).__name__)
                chosen = Route(self.primary, "primary", "replica-failed", None)
            except CONNECTION_ERRORS as exc:
                replica.skip_until = time.monotonic() + self.retry_after_s
                replica.up = False
                log.warning("reads.replica_failed", replica=replica.name, error=type(exc).__name__)
                chosen = Route(self.primary, "primary", "replica-failed", None)
            else:
                DB_QUERY_SECONDS.labels("replica", endpoint).observe(time.perf_counter() - started)
                return result, chosen
        return await self.run_on_primary(endpoint, work, chosen)

    async def run_on_primary(
        self, endpoint: str, work: Callable[[ReadPool], Awaitable[T]], route: Route | None = None
    ) -> tuple[T, Route]:
        """Run ``work`` on the primary's read-only pool (a writer whose write no replica shows yet)."""
        started = time.perf_counter()
        result = await work(self.primary)
        DB_QUERY_SECONDS.labels("primary-read", endpoint).observe(time.perf_counter() - started)
        return result, route or Route(self.primary, "primary", "ryw", None)

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.pool.close()
        await self.primary.close()

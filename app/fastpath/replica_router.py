"""Where a display read goes: a replica when one is healthy and fresh enough, else the primary.

The replicas' state (up, replay LSN, lag) and whether the primary answers are kept fresh by
:mod:`app.fastpath.replica_monitor`; routing reads them and queries nothing itself, but for one
case: the primary unreachable and a reader's token beyond every replica's last sample.

A replica is eligible when its last poll succeeded recently and its lag is within
``max_replica_lag``; a reader with a read-your-writes token additionally needs the replica's
replay LSN to have reached the token's commit LSN. A read that fails on a replica is retried
once on the primary (a ``ReadPool``: read-only sessions), and that replica sits out a while.

**Primary unreachable = degraded, not down** (docs/faults.md). Without the primary no commit can
happen, so a replica whose lag can no longer be measured still holds the newest data there is:
it serves display reads, marked ``degraded``. A reader with a token still needs a replica whose
own replay LSN covers it; otherwise the read is refused (503), never answered with older data.
Before refusing, the healthy replicas are asked their replay position there and then (the
monitor's samples may be a poll interval old: in a switchover the synchronous standby already
holds the writer's commit when the old primary goes away).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import asyncpg
import structlog

from app.core.db import DatabaseUnavailable, ReadPool, lsn_to_int
from app.core.metrics import DB_QUERY_SECONDS, REPLICA_READS
from app.core.sql import queries

T = TypeVar("T")
ReadSource = Literal["replica", "primary"]
log = structlog.get_logger("catalog.reads")

_REPLICA_QUERY_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.QueryCanceledError,  # statement timeout, or canceled by a recovery conflict
    asyncpg.SerializationError,  # recovery conflict (40001)
)
# A replica whose last good poll is older than this is treated as down.
STALE_POLL_S = 1.0
# Asking the replicas themselves whether they replayed a reader's token: this often, this far apart.
_REPLAY_ASKS = 3
_REPLAY_ASK_EVERY_S = 0.025
_REPLAY_LSN = queries("ops")["replica_replay_lsn"]
_ASK_ERRORS: tuple[type[BaseException], ...] = (DatabaseUnavailable, *_REPLICA_QUERY_ERRORS)


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
    degraded: bool = False  # served while the primary is unreachable (replica lag unknown)

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
    # The monitor's view of the primary: False once it stopped answering (degraded mode).
    primary_reachable: bool = True
    _next: int = 0

    def eligible(self, replica: Replica, now: float) -> bool:
        """May display reads without a token use ``replica``? (``/readyz``, the eligibility gauge.)"""
        return replica.healthy(now) and (replica.lag_s <= self.max_lag_s or not self.primary_reachable)

    def eligibility(self) -> dict[str, bool]:
        """Each replica by name: in rotation for display reads right now?"""
        now = time.monotonic()
        return {replica.name: self.eligible(replica, now) for replica in self.replicas}

    def route(self, min_lsn: int = 0) -> Route:
        """A healthy replica within the lag bound (and past ``min_lsn``), else the primary and why."""
        if not self.replicas:
            return Route(self.primary, "primary", "no-replica", None)
        if not self.primary_reachable:
            spare = self._spare(min_lsn)
            if spare is not None:
                return spare
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

    def _spare(self, min_lsn: int, exclude: Replica | None = None) -> Route | None:
        """With the primary unreachable: the healthy replica that has replayed furthest, if it covers ``min_lsn``."""
        now = time.monotonic()
        candidates = [r for r in self.replicas if r is not exclude and r.healthy(now) and r.replay_lsn >= min_lsn]
        if not candidates:
            return None
        best = max(candidates, key=lambda r: r.replay_lsn)
        return Route(best.pool, "replica", "primary-down", best, best.replay_lsn, degraded=True)

    async def _replayed_spare(self, min_lsn: int, exclude: Replica | None) -> Route | None:
        """With the primary unreachable and no sample covering ``min_lsn``: a healthy replica that
        says it has replayed that far now (asked a few times, briefly apart), else None."""
        for attempt in range(_REPLAY_ASKS):
            if attempt:
                await asyncio.sleep(_REPLAY_ASK_EVERY_S)
            now = time.monotonic()
            for replica in sorted(self.replicas, key=lambda r: -r.replay_lsn):
                if replica is exclude or not replica.healthy(now):
                    continue
                try:
                    value = await replica.pool.fetchval(_REPLAY_LSN)
                except _ASK_ERRORS:
                    continue
                if value is not None and lsn_to_int(value) >= min_lsn:
                    replica.replay_lsn = max(replica.replay_lsn, lsn_to_int(value))  # replay only advances
                    return Route(replica.pool, "replica", "primary-down", replica, replica.replay_lsn, degraded=True)
        return None

    async def run(
        self, endpoint: str, work: Callable[[ReadPool], Awaitable[T]], *, min_lsn: int = 0
    ) -> tuple[T, Route]:
        """Run ``work`` on the chosen pool; a replica failure retries once on the primary, and an
        unreachable primary falls back to the freshest replica that satisfies the reader.

        Database time is recorded per pool and per endpoint (the policy name), for ops/hotpath.
        """
        chosen = self.route(min_lsn)
        failed: Replica | None = None
        if chosen.replica is not None:
            replica = chosen.replica
            started = time.perf_counter()
            try:
                result = await work(chosen.pool)
            except asyncpg.DataError:
                raise  # a value the query cannot take: bad input, not a sick replica
            except _REPLICA_QUERY_ERRORS as exc:
                # A recovery conflict or timeout on the replica: answer from the primary this once.
                log.warning("reads.replica_query_failed", replica=replica.name, error=type(exc).__name__)
            except DatabaseUnavailable as exc:
                replica.skip_until = time.monotonic() + self.retry_after_s
                replica.up = False
                failed = replica
                log.warning("reads.replica_failed", replica=replica.name, error=exc.reason)
            else:
                DB_QUERY_SECONDS.labels("replica", endpoint).observe(time.perf_counter() - started)
                REPLICA_READS.labels(replica.name).inc()
                return result, chosen
            chosen = Route(self.primary, "primary", "replica-failed", None)
        try:
            return await self.run_on_primary(endpoint, work, chosen)
        except DatabaseUnavailable as exc:
            spare = self._spare(min_lsn, exclude=failed) if exc.unreachable else None
            if spare is None and exc.unreachable and min_lsn:
                spare = await self._replayed_spare(min_lsn, exclude=failed)
            if spare is None:
                raise
            # The monitor will say so within ~100 ms; this read need not wait for it.
            self.primary_reachable = False
            result = await work(spare.pool)
            assert spare.replica is not None  # a spare route is always a replica's
            REPLICA_READS.labels(spare.replica.name).inc()
            return result, spare

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

"""Where a display read goes: a replica when one is healthy and fresh enough, else the primary.

A background monitor samples the primary's WAL position and each replica's replay position
every ~100 ms. A replica's lag is the age of the oldest primary WAL it has not replayed yet:
"now minus when the primary was where this replica is". That is 0 for a caught-up replica
however idle the system is, and grows from the moment of a write while replay is stuck.

A replica is eligible when its last poll succeeded recently and its lag is within
``max_replica_lag``; a reader with a read-your-writes token additionally needs the replica's
replay LSN to have reached the token's commit LSN. A read that fails on a replica is retried
once on the primary (a ``ReadPool``: read-only sessions), and that replica sits out a while.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import asyncpg
import structlog
from prometheus_client import Gauge

from app.core.db import CONNECTION_ERRORS, ReadPool, lsn_to_int
from app.core.metrics import DB_QUERY_SECONDS
from app.core.sql import load_queries

T = TypeVar("T")
ReadSource = Literal["replica", "primary"]
Q = load_queries("ops")
log = structlog.get_logger("catalog.reads")

REPLICA_LAG = Gauge(
    "catalog_replica_lag_seconds", "Replica staleness as seen by this instance.", ["replica"], multiprocess_mode="max"
)
REPLICA_UP = Gauge(
    "catalog_replica_up", "1 when the replica answered the last poll.", ["replica"], multiprocess_mode="min"
)
REPLICA_ELIGIBLE = Gauge(
    "catalog_replica_eligible", "1 when display reads may use the replica.", ["replica"], multiprocess_mode="min"
)

_POLL_TIMEOUT_S = 0.5
_REPLICA_QUERY_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.QueryCanceledError,  # statement timeout, or canceled by a recovery conflict
    asyncpg.SerializationError,  # recovery conflict (40001)
)
_POLL_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
# A replica whose last good poll is older than this is treated as down.
_STALE_POLL_S = 1.0


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
    conn: asyncpg.Connection[asyncpg.Record] | None = None

    def healthy(self, now: float) -> bool:
        return self.up and now - self.last_ok < _STALE_POLL_S and now >= self.skip_until


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
            if replica.conn is not None:
                with contextlib.suppress(Exception):
                    await replica.conn.close(timeout=1)
            await replica.pool.close()
        await self.primary.close()


class ReplicaMonitor:
    """Samples primary WAL position and replica replay positions; keeps the router's view fresh."""

    def __init__(self, router: ReadRouter, primary_dsn: str, interval_s: float = 0.1, history_s: float = 300) -> None:
        self.router = router
        self.primary_dsn = primary_dsn
        self.interval_s = interval_s
        self._history: deque[tuple[float, int]] = deque(maxlen=max(10, int(history_s / interval_s)))
        self._primary: asyncpg.Connection[asyncpg.Record] | None = None
        self._last_primary_sample = 0.0

    async def _connect(self, dsn: str) -> asyncpg.Connection[asyncpg.Record]:
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
            dsn, timeout=_POLL_TIMEOUT_S * 2, server_settings={"application_name": "catalog.monitor"}
        )
        return conn

    async def _primary_lsn(self) -> int | None:
        try:
            if self._primary is None or self._primary.is_closed():
                self._primary = await self._connect(self.primary_dsn)
            value = await self._primary.fetchval(Q["primary_lsn"], timeout=_POLL_TIMEOUT_S)
        except _POLL_ERRORS:
            await self._drop(self._primary)
            self._primary = None
            return None
        return lsn_to_int(value)

    async def _poll_replica(self, replica: Replica) -> None:
        try:
            if replica.conn is None or replica.conn.is_closed():
                replica.conn = await self._connect(replica.dsn)
            value = await replica.conn.fetchval(Q["replica_replay_lsn"], timeout=_POLL_TIMEOUT_S)
        except _POLL_ERRORS:
            await self._drop(replica.conn)
            replica.conn = None
            replica.up = False
            return
        if value is None:  # not in recovery: a promoted or misconfigured "replica"
            replica.up = False
            return
        replica.replay_lsn = lsn_to_int(value)
        replica.up = True
        replica.last_ok = time.monotonic()

    @staticmethod
    async def _drop(conn: asyncpg.Connection[asyncpg.Record] | None) -> None:
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def lag_of(self, replay_lsn: int, now: float) -> float:
        """Seconds since the primary first had WAL this replica has not replayed (0 when caught up)."""
        if not self._history:
            return float("inf")
        if replay_lsn >= self._history[-1][1]:
            return 0.0
        lsns = [lsn for _, lsn in self._history]
        index = bisect.bisect_right(lsns, replay_lsn)  # first sample the replica has not reached
        if index == 0:
            return now - self._history[0][0] + self.interval_s  # behind everything we remember
        # The primary moved past replay_lsn somewhere between samples index-1 and index.
        return now - self._history[index - 1][0]

    async def poll_once(self) -> None:
        primary_lsn, _ = await asyncio.gather(
            self._primary_lsn(), asyncio.gather(*(self._poll_replica(r) for r in self.router.replicas))
        )
        now = time.monotonic()
        if primary_lsn is not None and (not self._history or primary_lsn >= self._history[-1][1]):
            self._history.append((now, primary_lsn))
        if primary_lsn is not None:
            self._last_primary_sample = now
        # Without a recent primary position a replica's lag cannot be known: treat it as unbounded.
        primary_known = now - self._last_primary_sample < _STALE_POLL_S
        for replica in self.router.replicas:
            known = replica.up and primary_known
            replica.lag_s = self.lag_of(replica.replay_lsn, now) if known else float("inf")
            REPLICA_UP.labels(replica.name).set(1 if replica.up else 0)
            REPLICA_LAG.labels(replica.name).set(replica.lag_s if replica.up else -1)
            eligible = replica.healthy(now) and replica.lag_s <= self.router.max_lag_s
            REPLICA_ELIGIBLE.labels(replica.name).set(1 if eligible else 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until stopped; a failing poll only marks things down, it never ends the loop."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.poll_once()
            except Exception:
                log.exception("reads.monitor_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, self.interval_s - (time.monotonic() - started)))
        await self._drop(self._primary)

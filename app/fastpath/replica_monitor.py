"""The replica monitor: samples where the primary's WAL and each replica's replay are, ~every 100 ms.

A replica's lag is the age of the oldest primary WAL it has not replayed yet: "now minus when
the primary was where this replica is" (:class:`WalHistory`). That is 0 for a caught-up replica
however idle the system is, and grows from the moment of a write while replay is stuck. Without a
recent primary sample the lag cannot be known and is reported as unbounded.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from app.core.db import CONNECTION_ERRORS, lsn_to_int
from app.core.metrics import PRIMARY_UP, REPLICA_ELIGIBLE, REPLICA_LAG, REPLICA_UP
from app.core.sql import queries
from app.fastpath.replica_router import STALE_POLL_S, ReadRouter, Replica

Q = queries("ops")
log = structlog.get_logger("catalog.reads")

_POLL_TIMEOUT_S = 0.5
_POLL_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


class WalHistory:
    """Recent (time, primary WAL position) samples, turning a replay LSN into lag in seconds."""

    def __init__(self, interval_s: float, history_s: float = 300) -> None:
        self.interval_s = interval_s
        self._samples: deque[tuple[float, int]] = deque(maxlen=max(10, int(history_s / interval_s)))

    @property
    def last_lsn(self) -> int | None:
        return self._samples[-1][1] if self._samples else None

    def clear(self) -> None:
        """Forget every sample: the positions were another server's (a promoted replica's history
        forks below the old primary's last position)."""
        self._samples.clear()

    def record(self, at: float, primary_lsn: int) -> None:
        """Remember where the primary was at ``at`` (positions never go back; a lower one is ignored)."""
        if not self._samples or primary_lsn >= self._samples[-1][1]:
            self._samples.append((at, primary_lsn))

    def lag_of(self, replay_lsn: int, now: float) -> float:
        """Seconds since the primary first had WAL this replica has not replayed (0 when caught up)."""
        if not self._samples:
            return float("inf")
        if replay_lsn >= self._samples[-1][1]:
            return 0.0
        lsns = [lsn for _, lsn in self._samples]
        index = bisect.bisect_right(lsns, replay_lsn)  # first sample the replica has not reached
        if index == 0:
            return now - self._samples[0][0] + self.interval_s  # behind everything we remember
        # The primary moved past replay_lsn somewhere between samples index-1 and index.
        return now - self._samples[index - 1][0]


class _Probe:
    """The monitor's own connection to one server, reopened after any failure."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self.fresh = False  # the last sample opened a new connection (maybe to another server)

    async def sample(self, query: str) -> tuple[bool, str | None]:
        """``(reachable, value)`` of a one-value query; unreachable drops the connection."""
        try:
            self.fresh = self._conn is None or self._conn.is_closed()
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(
                    self.dsn, timeout=_POLL_TIMEOUT_S * 2, server_settings={"application_name": "catalog.monitor"}
                )
            return True, await self._conn.fetchval(query, timeout=_POLL_TIMEOUT_S)
        except _POLL_ERRORS:
            self.close()
            return False, None

    def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        self._conn = None


class ReplicaMonitor:
    """Samples primary WAL position and replica replay positions; keeps the router's view fresh."""

    def __init__(self, router: ReadRouter, primary_dsn: str, interval_s: float = 0.1) -> None:
        self.router = router
        self.interval_s = interval_s
        self.history = WalHistory(interval_s)
        self._primary = _Probe(primary_dsn)
        self._replicas = {replica.name: _Probe(replica.dsn) for replica in router.replicas}
        self._last_primary_sample = 0.0

    async def _primary_lsn(self) -> int | None:
        reachable, value = await self._primary.sample(Q["primary_lsn"])
        return lsn_to_int(value) if reachable and value is not None else None

    async def _poll_replica(self, replica: Replica) -> None:
        probe = self._replicas.get(replica.name)
        if probe is None or probe.dsn != replica.dsn:  # a member that joined (members.py)
            if probe is not None:
                probe.close()
            probe = self._replicas[replica.name] = _Probe(replica.dsn)
        reachable, value = await probe.sample(Q["replica_replay_lsn"])
        if not reachable:
            replica.up = False
            return
        if value is None:
            # Not in recovery: promoted (a failover) or misconfigured. It serves no display reads,
            # and with a multi-host DSN (target_session_attrs=standby) the next connections find
            # the server that is a standby now.
            replica.up = False
            probe.close()
            await replica.pool.expire()
            return
        replica.replay_lsn = lsn_to_int(value)
        replica.up = True
        replica.last_ok = time.monotonic()

    async def sample_primary(self) -> None:
        """Where the primary's WAL is now; a failed sample marks it unreachable at once."""
        primary_lsn = await self._primary_lsn()
        now = time.monotonic()
        last = self.history.last_lsn
        if primary_lsn is not None and self._primary.fresh and last is not None and primary_lsn < last:
            # Reconnected to a server behind where the primary was: a promoted replica (failover).
            log.warning("reads.primary_changed", lsn=primary_lsn, previous_lsn=last)
            self.history.clear()
        if primary_lsn is not None:
            self.history.record(now, primary_lsn)
            self._last_primary_sample = now
        # One failed sample is enough to stop trusting the primary: reads move to the replicas
        # now (degraded), not after every one of them has failed on it.
        reachable = primary_lsn is not None
        if reachable != self.router.primary_reachable:
            log.warning("reads.primary_reachable" if reachable else "reads.primary_unreachable")
        self.router.primary_reachable = reachable
        PRIMARY_UP.set(1 if reachable else 0)

    async def sample_replicas(self) -> None:
        """Each replica's replay position, and its lag against the primary's recent history."""
        replicas = list(self.router.replicas)  # the set can change while we sample (members.py)
        for name in set(self._replicas) - {r.name for r in replicas}:
            self._replicas.pop(name).close()
            for gauge in (REPLICA_UP, REPLICA_LAG, REPLICA_ELIGIBLE):
                with contextlib.suppress(KeyError):
                    gauge.remove(name)
        await asyncio.gather(*(self._poll_replica(r) for r in replicas))
        now = time.monotonic()
        # Without a recent primary position a replica's lag cannot be known: treat it as unbounded.
        primary_known = now - self._last_primary_sample < STALE_POLL_S
        for replica in replicas:
            known = replica.up and primary_known
            replica.lag_s = self.history.lag_of(replica.replay_lsn, now) if known else float("inf")
            REPLICA_UP.labels(replica.name).set(1 if replica.up else 0)
            REPLICA_LAG.labels(replica.name).set(replica.lag_s if replica.up else -1)
            REPLICA_ELIGIBLE.labels(replica.name).set(1 if self.router.eligible(replica, now) else 0)

    async def poll_once(self) -> None:
        """Sample the primary, then the replicas (start-up and tests; ``run`` keeps them apart)."""
        await self.sample_primary()
        await self.sample_replicas()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until stopped; a failing poll only marks things down, it never ends the loop.

        The primary and the replicas are sampled by separate loops, so a frozen primary (whose
        probe waits out its timeout) cannot make healthy replicas look stale, and the reverse.
        """
        try:
            await asyncio.gather(
                self._every_interval(self.sample_primary, stop), self._every_interval(self.sample_replicas, stop)
            )
        finally:
            for probe in (self._primary, *self._replicas.values()):
                probe.close()

    async def _every_interval(self, sample: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await sample()
            except Exception:
                log.exception("reads.monitor_failed", sample=sample.__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, self.interval_s - (time.monotonic() - started)))

"""Liveness and readiness.

Readiness reports every dependency. An instance is unready only when it can serve nothing:
without a replica reads go to the primary, without Redis reads skip the cache, and without the
primary display reads come from the replicas while writes answer 503 (docs/faults.md). Each of
those makes the instance ``degraded``, which a load balancer must not take out of rotation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency

from app.contracts.policy import policy
from app.core.db import ReadPool, WritePool, lsn_to_int
from app.core.redis import Pingable
from app.core.sql import queries

Q = queries("ops")
CHECK_TIMEOUT_S = 1.0


class Check(msgspec.Struct, kw_only=True, omit_defaults=True):
    ok: bool
    latency_ms: float
    error: str | None = None
    lag_bytes: int | None = None
    lag_ms: float | None = None
    replay_paused: bool | None = None
    eligible: bool | None = None  # a replica: in this instance's read rotation (up, within the lag bound)


class Readiness(msgspec.Struct, kw_only=True):
    status: str  # ok | degraded (serving, something is down) | unavailable (cannot serve)
    degraded: bool
    instance: str
    primary: Check
    replicas: dict[str, Check]
    redis: Check
    listener: dict[str, Any]


def _failed(started: float, exc: BaseException) -> Check:
    return Check(ok=False, latency_ms=_ms(started), error=f"{type(exc).__name__}: {exc}"[:200])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@dataclass(frozen=True, slots=True)
class HealthChecks:
    """What readiness looks at; the composition root hands each dependency in."""

    instance: str
    primary: WritePool
    # The replicas by name, asked at each check: with Patroni the set changes (fastpath/members.py).
    replicas: Callable[[], dict[str, ReadPool]]
    redis: Pingable  # a Redis or a RedisCluster (a union would not survive Litestar's signature model)
    listener: Callable[[], dict[str, Any]]
    # The read router's view, by replica name: whether display reads may use it now.
    replica_eligibility: Callable[[], dict[str, bool]] = dict

    async def readiness(self) -> Readiness:
        (primary, primary_lsn), redis = await asyncio.gather(self._check_primary(), self._check_redis())
        pools = self.replicas()
        checks = await asyncio.gather(*(self._check_replica(pool, primary_lsn) for pool in pools.values()))
        eligibility = self.replica_eligibility()
        replicas = {
            name: msgspec.structs.replace(check, eligible=eligibility.get(name))
            for name, check in zip(pools, checks, strict=True)
        }
        listener = self.listener()
        degraded = not primary.ok or not redis.ok or not all(c.ok for c in replicas.values()) or not listener["ok"]
        serves_reads = primary.ok or any(c.ok for c in replicas.values())
        status = "unavailable" if not serves_reads else "degraded" if degraded else "ok"
        return Readiness(
            status=status,
            degraded=degraded,
            instance=self.instance,
            primary=primary,
            replicas=replicas,
            redis=redis,
            listener=listener,
        )

    async def _check_primary(self) -> tuple[Check, int | None]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                row = await self.primary.fetchrow(Q["primary_status"])
        except Exception as exc:  # noqa: BLE001  (any failure means "not ready", reported as such)
            return _failed(started, exc), None
        assert row is not None
        return Check(ok=not row["in_recovery"], latency_ms=_ms(started)), lsn_to_int(row["lsn"])

    @staticmethod
    async def _check_replica(pool: ReadPool, primary_lsn: int | None) -> Check:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                row = await pool.fetchrow(Q["replica_status"])
        except Exception as exc:  # noqa: BLE001
            return _failed(started, exc)
        assert row is not None
        replay = row["replay_lsn"]
        lag_bytes = max(0, primary_lsn - lsn_to_int(replay)) if primary_lsn and replay else None
        # Caught up means no lag, however long ago the last commit was replayed.
        lag_ms = 0.0 if lag_bytes == 0 else round(float(row["since_last_replay_s"] or 0) * 1000, 1)
        return Check(
            ok=bool(row["in_recovery"]),
            latency_ms=_ms(started),
            lag_bytes=lag_bytes,
            lag_ms=lag_ms,
            replay_paused=row["replay_paused"],
        )

    async def _check_redis(self) -> Check:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self.redis.ping()
        except Exception as exc:  # noqa: BLE001
            return _failed(started, exc)
        return Check(ok=True, latency_ms=_ms(started))


@get(**policy("ops.healthz").handler_kwargs())
async def healthz(health: NamedDependency[HealthChecks]) -> dict[str, str]:
    return {"status": "ok", "instance": health.instance}


@get(**policy("ops.readyz").handler_kwargs())
async def readyz(health: NamedDependency[HealthChecks]) -> Response[Readiness]:
    body = await health.readiness()
    return Response(body, status_code=503 if body.status == "unavailable" else 200)


ROUTES = [healthz, readyz]

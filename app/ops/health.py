"""Liveness and readiness.

Readiness reports every dependency. Only the primary is required: without a replica reads go
to the primary, and without Redis reads skip the cache, so those make the instance degraded,
not unready.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from litestar import Request, Response, get

from app.core.db import lsn_to_int
from app.core.policy import policy
from app.core.sql import load_queries
from app.services import Services, services_of

Q = load_queries("ops")
CHECK_TIMEOUT_S = 1.0


class Check(msgspec.Struct, kw_only=True, omit_defaults=True):
    ok: bool
    latency_ms: float
    error: str | None = None
    lag_bytes: int | None = None
    lag_ms: float | None = None
    replay_paused: bool | None = None


class Readiness(msgspec.Struct, kw_only=True):
    status: str
    instance: str
    primary: Check
    replicas: dict[str, Check]
    redis: Check
    listener: dict[str, Any]


def _failed(started: float, exc: BaseException) -> Check:
    return Check(ok=False, latency_ms=_ms(started), error=f"{type(exc).__name__}: {exc}"[:200])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _check_primary(services: Services) -> tuple[Check, int | None]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            row = await services.write_pool.fetchrow(Q["primary_status"])
    except Exception as exc:  # noqa: BLE001  (any failure means "not ready", reported as such)
        return _failed(started, exc), None
    assert row is not None
    return Check(ok=not row["in_recovery"], latency_ms=_ms(started)), lsn_to_int(row["lsn"])


async def _check_replica(services: Services, index: int, primary_lsn: int | None) -> Check:
    replica = services.reads_router.replicas[index]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            row = await replica.pool.fetchrow(Q["replica_status"])
    except Exception as exc:  # noqa: BLE001
        return _failed(started, exc)
    assert row is not None
    lag_bytes = max(0, primary_lsn - lsn_to_int(row["replay_lsn"])) if primary_lsn and row["replay_lsn"] else None
    # Caught up means no lag, however long ago the last commit was replayed.
    lag_ms = 0.0 if lag_bytes == 0 else round(float(row["since_last_replay_s"] or 0) * 1000, 1)
    return Check(
        ok=bool(row["in_recovery"]),
        latency_ms=_ms(started),
        lag_bytes=lag_bytes,
        lag_ms=lag_ms,
        replay_paused=row["replay_paused"],
    )


async def _check_redis(services: Services) -> Check:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await services.redis.ping()
    except Exception as exc:  # noqa: BLE001
        return _failed(started, exc)
    return Check(ok=True, latency_ms=_ms(started))


@get(**policy("ops.healthz").handler_kwargs())
async def healthz(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"status": "ok", "instance": services_of(request).settings.instance_name}


@get(**policy("ops.readyz").handler_kwargs())
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    services = services_of(request)
    (primary, primary_lsn), redis = await asyncio.gather(_check_primary(services), _check_redis(services))
    replica_checks = await asyncio.gather(
        *(_check_replica(services, i, primary_lsn) for i in range(len(services.reads_router.replicas)))
    )
    replicas = {r.name: c for r, c in zip(services.reads_router.replicas, replica_checks, strict=True)}
    listener = services.relay.status() if services.relay else {"ok": True, "enabled": False}
    degraded = not redis.ok or not all(c.ok for c in replicas.values()) or not listener["ok"]
    status = "unavailable" if not primary.ok else "degraded" if degraded else "ok"
    body = Readiness(
        status=status,
        instance=services.settings.instance_name,
        primary=primary,
        replicas=replicas,
        redis=redis,
        listener=listener,
    )
    return Response(body, status_code=503 if not primary.ok else 200)


ROUTES = [healthz, readyz]

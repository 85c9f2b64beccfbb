"""The composition root: builds the Litestar app and everything it owns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from app.catalog.reads.cache import DisplayCache
from app.catalog.reads.near_cache import NearCache
from app.catalog.reads.routes import ROUTES as READ_ROUTES
from app.catalog.reads.routing import ReadRouter, Replica, ReplicaMonitor
from app.catalog.reads.service import ListReads, ProductReads
from app.catalog.writes.routes import ROUTES as WRITE_ROUTES
from app.catalog.writes.service import ProductWrites
from app.checkout.routes import ROUTES as CHECKOUT_ROUTES
from app.checkout.service import Checkout
from app.core.breaker import CircuitBreaker
from app.core.db import create_read_pool, create_write_pool
from app.core.http import request_context_middleware
from app.core.logging import configure_logging
from app.core.problems import EXCEPTION_HANDLERS
from app.core.redis import create_redis
from app.core.ryw import RywCodec
from app.core.settings import Settings, get_settings
from app.ops.health import ROUTES as OPS_ROUTES
from app.outbox.relay import OutboxRelay, RelayConfig
from app.services import Services

log = structlog.get_logger("catalog.app")


class MetricsController(PrometheusController):
    path = "/metrics"


def create_app(settings: Settings | None = None, **litestar_options: Any) -> Litestar:
    """Build the app; pools and tasks are created in its lifespan, not at import.

    ``litestar_options`` are passed to ``Litestar`` (benchmarks mount comparison routes with them).
    """
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        write_pool = await create_write_pool(settings)
        primary_reads = await create_read_pool(settings.primary_dsn, settings)
        replicas = [
            Replica(name=f"replica-{i + 1}", dsn=dsn, pool=await create_read_pool(dsn, settings))
            for i, dsn in enumerate(settings.replica_dsns)
        ]
        router = ReadRouter(
            primary=primary_reads,
            replicas=replicas,
            max_lag_s=settings.max_replica_lag_ms / 1000,
            retry_after_s=settings.replica_retry_after_s,
        )
        monitor = ReplicaMonitor(router, settings.primary_dsn, interval_s=settings.replica_poll_interval_ms / 1000)
        await monitor.poll_once()  # know the replicas before the first request
        redis = create_redis(settings)
        breaker = CircuitBreaker("redis", cooldown_s=settings.redis_breaker_cooldown_s)
        # Hard ceiling per Redis call: the socket timeout plus the pool's one retry.
        display_cache = DisplayCache(redis, breaker, timeout_s=2 * settings.redis_socket_timeout_ms / 1000)
        relay: OutboxRelay | None = None
        relay_task: asyncio.Task[None] | None = None
        relay_redis = None
        stop = asyncio.Event()
        monitor_task = asyncio.create_task(monitor.run(stop), name="replica-monitor")
        monitor_task.add_done_callback(_log_task_end)
        # The near cache hears invalidations through this instance's relay connection.
        near = (
            NearCache(settings.near_cache_ttl_s, settings.near_cache_max_entries, settings.near_cache_max_bytes)
            if settings.near_cache_enabled and settings.relay_enabled
            else None
        )
        if settings.relay_enabled:
            relay_redis = create_redis(settings, timeout_ms=settings.relay_redis_timeout_ms)
            relay = OutboxRelay(
                RelayConfig.from_settings(settings),
                relay_redis,
                on_invalidated=near.invalidate_many if near is not None else None,
                on_connected=near.clear if near is not None else None,
            )
            relay_task = asyncio.create_task(relay.run(stop), name="outbox-relay")
            relay_task.add_done_callback(_log_task_end)
        app.state.services = Services(
            settings=settings,
            write_pool=write_pool,
            reads_router=router,
            redis=redis,
            ryw=RywCodec.from_settings(settings),
            product_reads=ProductReads(router, display_cache, settings.instance_name, near),
            list_reads=ListReads(router, display_cache),
            checkout=Checkout(write_pool),
            product_writes=ProductWrites(write_pool),
            relay=relay,
        )
        log.info("app.started", instance=settings.instance_name, replicas=len(replicas))
        try:
            yield
        finally:
            # Shutdown order: side tasks, Redis, the replica pools, then the primary (CONVENTIONS.md 8).
            stop.set()
            await _finish(monitor_task)
            if relay_task is not None:
                await _finish(relay_task)
            if relay_redis is not None:
                await relay_redis.aclose()
            await redis.aclose()
            await router.close()
            await write_pool.close()
            log.info("app.stopped", instance=settings.instance_name)

    prometheus = PrometheusConfig(app_name="catalog", group_path=True, exclude=["/metrics"])

    extra_handlers = litestar_options.pop("route_handlers", [])
    return Litestar(
        route_handlers=[*READ_ROUTES, *WRITE_ROUTES, *CHECKOUT_ROUTES, *OPS_ROUTES, MetricsController, *extra_handlers],
        lifespan=[lifespan],
        middleware=[
            request_context_middleware(settings.instance_name, debug_headers=settings.debug_headers),
            prometheus.middleware,
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Catalog service",
            version="0.1.0",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            create_examples=False,
        ),
        debug=False,
        **litestar_options,
    )


def _log_task_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    if (exc := task.exception()) is not None:
        log.error("task.crashed", task=task.get_name(), error=repr(exc))


async def _finish(task: asyncio.Task[None], timeout_s: float = 5.0) -> None:
    """Wait for a side task that was told to stop; cancel it if it does not."""
    try:
        await asyncio.wait_for(task, timeout=timeout_s)
    except TimeoutError:
        log.warning("task.stop_timeout", task=task.get_name())
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

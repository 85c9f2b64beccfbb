"""The composition root: builds the Litestar app, everything it owns, and how handlers receive it.

Pools, Redis clients and side tasks are created in the lifespan (never at import) into a
:class:`Runtime`; handlers receive its parts as named Litestar dependencies registered here.
Features never import this module, and nothing outside it reads ``app.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusController

from app.checkout.routes import ROUTES as CHECKOUT_ROUTES
from app.checkout.service import Checkout
from app.checkout.tokens import OrderTokens
from app.contracts.events import OUTBOX_CHANNEL
from app.contracts.policy import ADMIN_SECURITY
from app.contracts.ryw import RywCookies
from app.core.auth import admin_auth_middleware
from app.core.breaker import CircuitBreaker
from app.core.db import ReadPool, WritePool, create_read_pool, create_write_pool, server_settings
from app.core.doorbell import Doorbell
from app.core.http import HttpMetrics, observe_requests_middleware
from app.core.logging import configure_logging
from app.core.problems import EXCEPTION_HANDLERS
from app.core.redis import RedisClient, create_redis
from app.core.settings import Settings, get_settings
from app.fastpath import lane as fast_lane
from app.fastpath.display_cache import DisplayCache
from app.fastpath.lists import ListReads
from app.fastpath.members import PatroniMembers
from app.fastpath.near_cache import NearCache
from app.fastpath.products import ProductReads
from app.fastpath.replica_monitor import ReplicaMonitor
from app.fastpath.replica_router import ReadRouter, Replica
from app.fastpath.routes import ROUTES as READ_ROUTES
from app.fastpath.routes import DisplayReads, DisplayResponder
from app.health import ROUTES as HEALTH_ROUTES
from app.health import HealthChecks
from app.invalidation.relay import OutboxRelay
from app.openapi import complete_openapi, fix_allow
from app.writes.routes import ROUTES as WRITE_ROUTES
from app.writes.service import ProductWrites

log = structlog.get_logger("catalog.app")
T = TypeVar("T")


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False  # Prometheus text for scrapers, not part of the JSON API


@dataclass(slots=True)
class Runtime:
    """What the lifespan builds once per process; dependency providers hand its parts to handlers."""

    settings: Settings
    write_pool: WritePool
    router: ReadRouter
    redis: RedisClient
    near_cache: NearCache | None
    product_reads: ProductReads
    list_reads: ListReads
    display_reads: DisplayReads
    product_writes: ProductWrites
    checkout: Checkout
    health: HealthChecks
    relay: OutboxRelay | None


class _RuntimeSlot:
    """Holds the runtime between lifespan start and stop; providers read it from here."""

    current: Runtime | None = None

    def get(self) -> Runtime:
        if self.current is None:
            raise RuntimeError("the app's lifespan has not started")
        return self.current


def runtime_of(app: Litestar) -> Runtime:
    """The running app's runtime (tests and benchmarks look inside it)."""
    runtime: Runtime = app.state.runtime
    return runtime


def create_app(settings: Settings | None = None, **litestar_options: Any) -> Litestar:
    """Build the app; pools and tasks are created in its lifespan, not at import.

    ``litestar_options`` are passed to ``Litestar`` (benchmarks mount comparison routes with them).
    """
    settings = settings or get_settings()
    configure_logging(settings)
    slot = _RuntimeSlot()
    ryw = RywCookies(settings.ryw)
    display = DisplayResponder(ryw, debug_headers=settings.debug_headers)
    order_tokens = OrderTokens(settings.ryw.secret)
    http_metrics = HttpMetrics(app_name="catalog")
    lane: fast_lane.FastLane | None = None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        stop = asyncio.Event()
        runtime, tasks = await _start(settings, stop, display)
        slot.current = runtime
        app.state.runtime = runtime
        if lane is not None:
            lane.near = runtime.near_cache
        log.info("app.started", instance=settings.instance_name, replicas=len(runtime.router.replicas))
        try:
            yield
        finally:
            # Shutdown order: the lane, side tasks, Redis, the replica pools, then the primary.
            if lane is not None:
                lane.near = None
            stop.set()
            for task in tasks:
                await _finish(task)
            if runtime.relay is not None:
                await runtime.relay.redis.aclose()
            await runtime.redis.aclose()
            await runtime.router.close()
            await runtime.write_pool.close()
            slot.current = None
            log.info("app.stopped", instance=settings.instance_name)

    def provide(part: Callable[[Runtime], T]) -> Provide:
        return Provide(lambda: part(slot.get()), sync_to_thread=False)

    dependencies = {
        "reads": provide(lambda r: r.display_reads),
        "product_writes": provide(lambda r: r.product_writes),
        "checkout": provide(lambda r: r.checkout),
        "health": provide(lambda r: r.health),
        "ryw": Provide(lambda: ryw, sync_to_thread=False),
        "order_tokens": Provide(lambda: order_tokens, sync_to_thread=False),
    }
    extra_handlers = litestar_options.pop("route_handlers", [])
    app = Litestar(
        route_handlers=[
            *READ_ROUTES,
            *WRITE_ROUTES,
            *CHECKOUT_ROUTES,
            *HEALTH_ROUTES,
            MetricsController,
            *extra_handlers,
        ],
        dependencies=dependencies,
        lifespan=[lifespan],
        middleware=[
            observe_requests_middleware(
                http_metrics, settings.instance_name, debug_headers=settings.debug_headers, exclude=("/metrics",)
            ),
            admin_auth_middleware((settings.admin_token, *settings.admin_tokens)),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Catalog service",
            version="0.1.0",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            create_examples=False,
            components=Components(
                security_schemes={
                    ADMIN_SECURITY: SecurityScheme(
                        type="http", scheme="bearer", description="An admin token (CATALOG_ADMIN_TOKEN(S))"
                    )
                }
            ),
        ),
        debug=False,
        **litestar_options,
    )
    complete_openapi(app)
    fix_allow(app)
    if settings.near_cache.enabled and settings.near_cache.fast_lane:
        lane = fast_lane.install(
            app,
            lambda handler: fast_lane.FastLane(
                handler,
                ryw_cookie=settings.ryw.cookie_name,
                metrics=http_metrics,
                debug_headers=settings.debug_headers,
                instance_name=settings.instance_name,
            ),
        )
    return app


async def _start(
    settings: Settings, stop: asyncio.Event, display: DisplayResponder
) -> tuple[Runtime, list[asyncio.Task[None]]]:
    """Open pools and clients, start the side tasks (replica monitor, relay), wire the services."""
    db = settings.db
    write_pool = await create_write_pool(db)
    replicas = [
        Replica(name=f"replica-{i + 1}", dsn=dsn, pool=await create_read_pool(dsn, f"replica-{i + 1}", db))
        for i, dsn in enumerate(settings.replicas.dsns)
    ]
    router = ReadRouter(
        primary=await create_read_pool(db.primary_dsn, "primary", db),
        replicas=replicas,
        max_lag_s=settings.replicas.max_lag_ms / 1000,
        retry_after_s=settings.replicas.retry_after_s,
    )
    members = None
    if settings.replicas.patroni_urls:

        async def open_pool(dsn: str, name: str) -> ReadPool:
            return await create_read_pool(dsn, name, db)

        members = PatroniMembers(
            router,
            settings.replicas.patroni_urls,
            db.primary_dsn,
            open_pool,
            interval_s=settings.replicas.discovery_interval_ms / 1000,
        )
        await members.refresh()
    monitor = ReplicaMonitor(router, db.primary_dsn, interval_s=settings.replicas.poll_interval_ms / 1000)
    await monitor.poll_once()  # know the replicas before the first request
    redis = create_redis(settings.redis)
    breaker = CircuitBreaker("redis", cooldown_s=settings.redis.breaker_cooldown_s)
    # Hard ceiling per Redis call: the socket timeout plus the pool's one retry.
    display_cache = DisplayCache(redis, breaker, timeout_s=2 * settings.redis.socket_timeout_ms / 1000)
    tasks = [_side_task(monitor.run(stop), "replica-monitor")]
    if members is not None:
        tasks.append(_side_task(members.run(stop), "replica-members"))
    # The near cache hears invalidations through this instance's relay connection.
    near = None
    if settings.near_cache.enabled and settings.relay.enabled:
        near = NearCache(settings.near_cache.ttl_s, settings.near_cache.max_entries, settings.near_cache.max_bytes)
    relay = None
    if settings.relay.enabled:
        relay = OutboxRelay(
            settings.instance_name,
            db.primary_dsn,
            create_redis(settings.redis, timeout_ms=settings.relay.redis_timeout_ms),
            settings.relay,
            settings.cache,
            db=db,
            on_invalidated=near.invalidate_many if near is not None else None,
            on_connected=near.resume if near is not None else None,
            on_disconnected=near.suspend if near is not None else None,
        )
        tasks.append(_side_task(relay.run(stop), "outbox-relay"))
    # Writes commit without NOTIFY and ring this instead: one NOTIFY per interval at most, after COMMIT.
    doorbell = Doorbell(
        db.primary_dsn,
        OUTBOX_CHANNEL,
        interval_s=settings.relay.doorbell_interval_ms / 1000,
        server_settings=server_settings(db, "doorbell"),
    )
    tasks.append(_side_task(doorbell.run(stop), "outbox-doorbell"))
    product_reads = ProductReads(router, display_cache, settings.instance_name, near)
    list_reads = ListReads(router, display_cache)
    runtime = Runtime(
        settings=settings,
        write_pool=write_pool,
        router=router,
        redis=redis,
        near_cache=near,
        product_reads=product_reads,
        list_reads=list_reads,
        display_reads=DisplayReads(product_reads, list_reads, display),
        product_writes=ProductWrites(write_pool, doorbell),
        checkout=Checkout(write_pool, doorbell),
        health=HealthChecks(
            instance=settings.instance_name,
            primary=write_pool,
            replicas=lambda: {r.name: r.pool for r in router.replicas},
            redis=redis,
            listener=relay.status if relay is not None else lambda: {"ok": True, "enabled": False},
            replica_eligibility=router.eligibility,
        ),
        relay=relay,
    )
    return runtime, tasks


def _side_task(work: Any, name: str) -> asyncio.Task[None]:
    task: asyncio.Task[None] = asyncio.create_task(work, name=name)
    task.add_done_callback(_log_task_end)
    return task


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

"""The outbox relay: committed outbox events → idempotent cache invalidations in Redis.

It holds one dedicated connection (``application_name=catalog.relay``) with ``LISTEN outbox``
and wakes on a notification, on the poll interval, or on stop, whichever comes first. On every
(re)connect it LISTENs first and then sweeps the whole backlog, because notifications sent while
it was disconnected are lost (DESIGN.md rule 10). Several relays share the work: batches are
claimed with ``FOR UPDATE SKIP LOCKED`` and marked processed in the claiming transaction, only
after Redis succeeded. When Redis fails the claim rolls back and the events keep their place,
with ``attempts``, ``last_error`` and a capped exponential ``next_attempt_at``. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.cache import CacheScripts
from app.core.db import CONNECTION_ERRORS, init_connection, lsn_to_int
from app.core.metrics import (
    INVALIDATION_LATENCY,
    OUTBOX_BATCH_SIZE,
    OUTBOX_FAILED,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PENDING,
    OUTBOX_PROCESSED,
    RELAY_RECONNECTS,
)
from app.core.settings import Settings
from app.core.sql import load_queries
from app.outbox.invalidation import InvalidationPlan, apply_plan, flush_generations

Q = load_queries("outbox")
CHANNEL = "outbox"
# After each batch the relay announces the (product, version) pairs it invalidated here, for the
# near caches of every instance. NOTIFY payloads must stay under 8000 bytes.
INVALIDATION_CHANNEL = "catalog_invalidation"
_NOTIFY_PAYLOAD_MAX = 7_000
log = structlog.get_logger("catalog.relay")

_REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
_PURGE_EVERY_S = 60.0
_BACKLOG_EVERY_S = 5.0
_PURGE_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class RelayConfig:
    name: str
    dsn: str
    poll_interval_s: float = 1.0
    batch_size: int = 2_000
    probe_interval_s: float = 5.0
    max_backoff_s: float = 5.0
    retention_s: int = 86_400
    fence_ttl_ms: int = 300_000
    connect_timeout_s: float = 5.0
    generation_interval_ms: int = 5_000
    # False: poll only (e.g. behind a transaction-pooling proxy, where LISTEN does not work).
    listen: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, name: str | None = None) -> RelayConfig:
        return cls(
            name=name or settings.instance_name,
            dsn=settings.primary_dsn,
            poll_interval_s=settings.relay_poll_interval_s,
            batch_size=settings.relay_batch_size,
            probe_interval_s=settings.relay_probe_interval_s,
            max_backoff_s=settings.relay_max_backoff_s,
            retention_s=settings.outbox_retention_s,
            fence_ttl_ms=settings.fence_ttl_s * 1000,
            connect_timeout_s=settings.connect_timeout_s,
            generation_interval_ms=int(settings.list_generation_interval_s * 1000),
            listen=settings.relay_listen,
        )


@dataclass(frozen=True, slots=True)
class DrainResult:
    processed: int
    failed: int


class ListenerLostError(ConnectionError):
    """The LISTEN connection was terminated or stopped answering."""


async def wait_first(wake: asyncio.Event, stop: asyncio.Event, within_s: float) -> None:
    """Return when ``wake`` or ``stop`` is set, or after ``within_s`` seconds, whichever comes first."""
    if wake.is_set() or stop.is_set():
        return
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class OutboxRelay:
    """One relay: run it as a task (``run(stop)``) in an app instance or in ``catalog relay``."""

    def __init__(
        self,
        config: RelayConfig,
        redis: Redis,
        *,
        on_invalidated: Callable[[list[tuple[int, int]]], None] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.redis = redis
        # Subscribers to every relay's announcements (this instance's near cache), and to our
        # reconnects (announcements sent while we were away are lost).
        self.on_invalidated = on_invalidated
        self.on_connected = on_connected
        self.scripts = CacheScripts(redis)
        self._wake = asyncio.Event()
        self.connected = False
        self.connections = 0
        self.processed_total = 0
        self.last_batch_at: float | None = None
        self.last_error: str | None = None
        self.backend_pid: int | None = None
        self._last_purge = 0.0
        self._last_backlog = 0.0
        self._redis_backoff_s = 0.0  # > 0 while Redis is failing: pause instead of retrying per NOTIFY
        self._pending_generations: set[str] = set()  # coalesced list-generation bumps still to land

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; connection failures are retried with capped backoff."""
        backoff = 0.05
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (a relay must outlive any single failure)
                self.connected = False
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                known = isinstance(exc, (*CONNECTION_ERRORS, asyncpg.PostgresError, ListenerLostError))
                log_event = log.warning if known else log.exception
                log_event("relay.session_failed", relay=self.config.name, error=self.last_error, retry_in_s=backoff)
                await wait_first(asyncio.Event(), stop, backoff)
                backoff = min(backoff * 2, self.config.max_backoff_s)
        # Coalesced list-generation bumps live in this process: land them before it goes.
        if self._pending_generations:
            try:
                await flush_generations(self.scripts, self._pending_generations, 0)
                self._pending_generations = set()
            except _REDIS_ERRORS as exc:
                log.warning("relay.generation_flush_failed", relay=self.config.name, error=repr(exc))

    async def _session(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
            self.config.dsn,
            timeout=self.config.connect_timeout_s,
            server_settings={"application_name": "catalog.relay"},
        )
        lost = asyncio.Event()

        def on_terminated(_: object) -> None:
            lost.set()
            self._wake.set()

        def on_notify(*_: object) -> None:
            self._wake.set()

        try:
            await init_connection(conn)
            conn.add_termination_listener(on_terminated)
            # LISTEN first, then sweep: anything committed from here on either is in the sweep or
            # wakes us; anything committed while we were away is in the sweep.
            if self.config.listen:
                await conn.add_listener(CHANNEL, on_notify)
            if self.on_invalidated is not None:
                await conn.add_listener(INVALIDATION_CHANNEL, self._on_announcement)
                if self.on_connected is not None:
                    self.on_connected()
            self.backend_pid = conn.get_server_pid()
            self.connected = True
            self.connections += 1
            if self.connections > 1:
                RELAY_RECONNECTS.inc()
            log.info("relay.listening", relay=self.config.name, pid=self.backend_pid)
            await self.drain(conn)
            await self._housekeeping(conn, force=True)
            last_probe = time.monotonic()
            while not stop.is_set():
                if self._redis_backoff_s:
                    await wait_first(asyncio.Event(), stop, self._redis_backoff_s)
                else:
                    await wait_first(self._wake, stop, self.config.poll_interval_s)
                self._wake.clear()
                if lost.is_set() or conn.is_closed():
                    raise ListenerLostError("listener connection terminated")
                if stop.is_set():
                    break
                await self.drain(conn)
                await self._flush_generations()
                if time.monotonic() - last_probe >= self.config.probe_interval_s:
                    # A half-open TCP connection delivers no notifications and no error: ask.
                    await conn.fetchval("SELECT 1", timeout=2.0)
                    last_probe = time.monotonic()
                await self._housekeeping(conn)
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2.0)
            if not conn.is_closed():
                conn.terminate()

    # ------------------------------------------------------------------ the work

    async def drain(self, conn: asyncpg.Connection[asyncpg.Record]) -> DrainResult:
        """Process due events batch by batch until none are left or Redis fails."""
        processed = failed = 0
        while True:
            done, fail = await self._process_batch(conn)
            processed += done
            failed += fail
            if fail:
                self._redis_backoff_s = min(max(self._redis_backoff_s * 2, 0.1), self.config.max_backoff_s)
                return DrainResult(processed, failed)
            self._redis_backoff_s = 0.0
            if done < self.config.batch_size:
                return DrainResult(processed, failed)

    async def _process_batch(self, conn: asyncpg.Connection[asyncpg.Record]) -> tuple[int, int]:
        error: str | None = None
        tx = conn.transaction()
        await tx.start()
        try:
            rows = await conn.fetch(Q["claim_batch"], self.config.batch_size)
            if not rows:
                await tx.commit()
                return 0, 0
            ids = [row["id"] for row in rows]
            plan = InvalidationPlan.of(row["payload"] for row in rows if isinstance(row["payload"], dict))
            # Every claimed event has committed, so this is at or past each of their commit records.
            lsn = lsn_to_int(await conn.fetchval(Q["wal_insert_lsn"]))
            try:
                self._pending_generations |= await apply_plan(
                    self.redis,
                    self.scripts,
                    plan,
                    self.config.fence_ttl_ms,
                    lsn=lsn,
                    generation_interval_ms=self.config.generation_interval_ms,
                )
            except _REDIS_ERRORS as exc:
                error = f"redis: {type(exc).__name__}: {exc}"[:500]
            if error is None:
                await conn.execute(Q["mark_processed"], ids, self.config.name)
                for payload in announcements(plan.versions):
                    await conn.execute(Q["announce_invalidations"], payload)
                await tx.commit()
            else:
                await tx.rollback()
        except BaseException:
            with contextlib.suppress(Exception):
                await tx.rollback()
            raise
        if error is not None:
            # The claim is rolled back; record the failure so ops can see it, and back off.
            await conn.execute(Q["mark_failed"], ids, error, self.config.max_backoff_s)
            for row in rows:
                OUTBOX_FAILED.labels(row["event_type"]).inc()
            self.last_error = error
            log.warning("relay.redis_failed", relay=self.config.name, events=len(ids), error=error)
            return 0, len(ids)
        self._observe(rows)
        return len(ids), 0

    def _observe(self, rows: list[asyncpg.Record]) -> None:
        now = time.time()
        OUTBOX_BATCH_SIZE.observe(len(rows))
        by_type: dict[str, int] = {}
        observe = INVALIDATION_LATENCY.observe
        for row in rows:
            by_type[row["event_type"]] = by_type.get(row["event_type"], 0) + 1
            observe(max(0.0, now - row["created_at"].timestamp()))
        for event_type, count in by_type.items():
            OUTBOX_PROCESSED.labels(event_type).inc(count)
        self.processed_total += len(rows)
        self.last_batch_at = now
        self.last_error = None

    async def _flush_generations(self) -> None:
        if not self._pending_generations or self._redis_backoff_s:
            return
        try:
            self._pending_generations = await flush_generations(
                self.scripts, self._pending_generations, self.config.generation_interval_ms
            )
        except _REDIS_ERRORS as exc:
            log.warning("relay.generation_flush_failed", relay=self.config.name, error=repr(exc))

    def _on_announcement(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        assert self.on_invalidated is not None
        pairs = []
        for item in str(payload).split(","):
            product_id, _, version = item.partition(":")
            if product_id.isdigit() and version.isdigit():
                pairs.append((int(product_id), int(version)))
        self.on_invalidated(pairs)

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeping(self, conn: asyncpg.Connection[asyncpg.Record], *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_backlog >= _BACKLOG_EVERY_S:
            self._last_backlog = now
            row = await conn.fetchrow(Q["backlog"])
            if row is not None:
                OUTBOX_PENDING.set(row["pending"])
                OUTBOX_OLDEST_AGE.set(row["oldest_pending_age_seconds"])
        if force or now - self._last_purge >= _PURGE_EVERY_S:
            self._last_purge = now
            await purge_processed(conn, self.config.retention_s)

    def status(self) -> dict[str, Any]:
        """For /readyz: is the listener connected, and how is it doing."""
        return {
            "ok": self.connected,
            "relay": self.config.name,
            "connections": self.connections,
            "processed": self.processed_total,
            "last_batch_age_s": None if self.last_batch_at is None else round(time.time() - self.last_batch_at, 3),
            "last_error": self.last_error,
        }


async def purge_processed(
    conn: asyncpg.Connection[asyncpg.Record], older_than_s: float, batch_size: int = _PURGE_BATCH
) -> int:
    """Delete processed events older than the retention, in batches; returns how many."""
    total = 0
    while True:
        status = await conn.execute(Q["purge_processed"], float(older_than_s), batch_size)
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch_size:
            return total


def announcements(versions: dict[int, int]) -> list[str]:
    """``"id:version,..."`` payloads for the invalidation channel, each under the NOTIFY limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for product_id, version in versions.items():
        item = f"{product_id}:{version}"
        if current and size + len(item) + 1 > _NOTIFY_PAYLOAD_MAX:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(item)
        size += len(item) + 1
    if current:
        payloads.append(",".join(current))
    return payloads

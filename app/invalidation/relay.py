"""The outbox relay loop: committed outbox events → idempotent cache invalidations in Redis.

It holds one dedicated connection (``application_name=catalog.relay``) with ``LISTEN outbox``
and wakes on a notification, on the poll interval, or on stop, whichever comes first. On every
(re)connect it LISTENs first and then sweeps the whole backlog, because notifications sent while
it was disconnected are lost (docs/consistency.md, rule 10; docs/adr/0002). A dead connection is
noticed by its termination callback or, for a half-open socket, by a periodic probe. The batch
work itself is :mod:`app.invalidation.batch`.
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

from app.contracts.cache_keys import relay_mark_key
from app.contracts.cache_scripts import CacheScripts
from app.contracts.events import INVALIDATION_CHANNEL, OUTBOX_CHANNEL, parse_announcement
from app.core.db import CONNECTION_ERRORS, command_timeout_s, init_connection, server_settings
from app.core.metrics import RELAY_RECONNECTS
from app.core.redis import REDIS_ERRORS, RedisClient
from app.core.settings import CacheSettings, DatabaseSettings, RelaySettings
from app.invalidation.batch import BatchOptions, process_batch
from app.invalidation.recovery import CacheMemory
from app.invalidation.refresh import refresh_best_effort
from app.invalidation.retention import purge_processed, record_backlog
from app.invalidation.timeline import adopt_timeline, primary_timeline

log = structlog.get_logger("catalog.relay")

_PURGE_EVERY_S = 60.0
_BACKLOG_EVERY_S = 5.0


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
        name: str,
        dsn: str,
        redis: RedisClient,
        settings: RelaySettings,
        cache: CacheSettings,
        *,
        db: DatabaseSettings | None = None,
        on_invalidated: Callable[[list[tuple[int, int]]], None] | None = None,
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.dsn = dsn
        self.redis = redis
        self.settings = settings
        self.db = db or DatabaseSettings()
        self.fence_ttl_s = cache.fence_ttl_s
        self.batch = BatchOptions(
            relay_name=name,
            batch_size=settings.batch_size,
            fence_ttl_ms=cache.fence_ttl_s * 1000,
            generation_interval_ms=int(cache.list_generation_interval_s * 1000),
            max_backoff_s=settings.max_backoff_s,
            refresh_max_products=settings.refresh_max_products,
        )
        # Subscribers to every relay's announcements (this instance's near cache), and to our
        # connection coming and going (announcements sent while we are away are lost).
        self.on_invalidated = on_invalidated
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.memory = CacheMemory(relay_mark=relay_mark_key(name))
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
        # The primary history (timeline.py) this relay last connected to, and whether Redis has
        # been checked against the current one (not yet while Redis is failing).
        self.timeline: str | None = None
        self._timeline_adopted = False

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; connection failures are retried with capped backoff."""
        backoff = 0.05
        while not stop.is_set():
            sessions = self.connections
            try:
                await self._session(stop)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (a relay must outlive any single failure)
                if self.connections > sessions:
                    backoff = 0.05  # that session was up: a new failure, not the same outage going on
                self.connected = False
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                known = isinstance(exc, (*CONNECTION_ERRORS, asyncpg.PostgresError, ListenerLostError))
                log_event = log.warning if known else log.exception
                log_event("relay.session_failed", relay=self.name, error=self.last_error, retry_in_s=backoff)
                await wait_first(asyncio.Event(), stop, backoff)
                backoff = min(backoff * 2, self.settings.max_backoff_s)

    async def _session(self, stop: asyncio.Event) -> None:
        # Deadlines as for every session (core/db.py); the server also ends a claim left idle in
        # its transaction by a frozen relay, so its batch goes back to the queue.
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
            self.dsn,
            timeout=self.db.connect_timeout_s,
            command_timeout=command_timeout_s(self.db),
            # A batch whose COMMIT a crash loses is re-delivered (idempotent): no flush wait (ADR 0016).
            server_settings={**server_settings(self.db, "relay"), "synchronous_commit": "off"},
        )
        lost = asyncio.Event()

        def on_terminated(_: object) -> None:
            lost.set()
            self._wake.set()

        def on_notify(*_: object) -> None:
            self._wake.set()

        try:
            await self._follow_timeline(conn)
            await self._listen(conn, on_terminated, on_notify)
            self.backend_pid = conn.get_server_pid()
            self.connected = True
            self.connections += 1
            if self.connections > 1:
                RELAY_RECONNECTS.inc()
            log.info("relay.listening", relay=self.name, pid=self.backend_pid)
            await self.drain(conn)
            await self._housekeeping(conn, force=True)
            last_probe = time.monotonic()
            while not stop.is_set():
                if self._redis_backoff_s:
                    await wait_first(asyncio.Event(), stop, self._redis_backoff_s)
                else:
                    await wait_first(self._wake, stop, self.settings.poll_interval_s)
                self._wake.clear()
                if lost.is_set() or conn.is_closed():
                    raise ListenerLostError("listener connection terminated")
                if stop.is_set():
                    break
                await self.drain(conn)
                if time.monotonic() - last_probe >= self.settings.probe_interval_s:
                    # A half-open TCP connection delivers no notifications and no error: ask.
                    await conn.fetchval("SELECT 1", timeout=2.0)
                    last_probe = time.monotonic()
                await self._housekeeping(conn)
        finally:
            self.connected = False
            if self.on_disconnected is not None:
                self.on_disconnected()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2.0)
            if not conn.is_closed():
                conn.terminate()

    async def _listen(
        self,
        conn: asyncpg.Connection[asyncpg.Record],
        on_terminated: Callable[[object], None],
        on_notify: Callable[..., None],
    ) -> None:
        await init_connection(conn)
        conn.add_termination_listener(on_terminated)
        # LISTEN first, then sweep: anything committed from here on either is in the sweep or
        # wakes us; anything committed while we were away is in the sweep.
        if self.settings.listen:
            await conn.add_listener(OUTBOX_CHANNEL, on_notify)
        if self.on_invalidated is not None:
            await conn.add_listener(INVALIDATION_CHANNEL, self._on_announcement)
            if self.on_connected is not None:
                self.on_connected()

    # ------------------------------------------------------------------ the work

    async def drain(self, conn: asyncpg.Connection[asyncpg.Record]) -> DrainResult:
        """Process due events batch by batch until none are left or Redis fails.

        Each batch's round trip to Redis checks that Redis lost no keys since we last looked, a drain
        with nothing to do asks directly; a Redis that forgot is healed (recovery.py) before the
        drain returns. A Redis failure backs off like a failed batch.
        """
        processed = failed = 0
        try:
            if not self._timeline_adopted:
                await self._follow_timeline(conn, tolerate_redis=False)
            with contextlib.suppress(*REDIS_ERRORS):  # down: the batch fails and records it on its events
                await self.scripts.refresh_mark_tags()  # the shards the marks live on (Redis Cluster)
            while True:
                outcome = await process_batch(conn, self.scripts, self.batch, marks=(self.memory.seen, self.memory.own))
                processed += outcome.processed
                failed += outcome.failed
                if outcome.error is not None:
                    return self._redis_failed(outcome.error, processed, failed)
                if outcome.forgotten:
                    await self.memory.recover(conn, self.scripts, self.batch, self.fence_ttl_s)
                else:
                    # Remember the marks we raised, not only the ones we read: a Redis failover that
                    # loses a batch of ours leaves our own mark lower, and we notice.
                    self.memory.raised(outcome.lsn)
                    await refresh_best_effort(conn, self.scripts, outcome.refresh, relay=self.name)
                self._redis_backoff_s = 0.0
                if outcome.processed:
                    self.processed_total += outcome.processed
                    self.last_batch_at = time.time()
                    self.last_error = None
                if outcome.processed < self.batch.batch_size:
                    if not processed and await self._forgot():  # nothing was due: no batch checked
                        await self.memory.recover(conn, self.scripts, self.batch, self.fence_ttl_s)
                    return DrainResult(processed, failed)
        except REDIS_ERRORS as exc:
            return self._redis_failed(f"redis: {type(exc).__name__}: {exc}"[:500], processed, failed)

    async def _follow_timeline(self, conn: asyncpg.Connection[asyncpg.Record], *, tolerate_redis: bool = True) -> None:
        """On connect: a primary of another history (a failover) voids what this relay remembers of
        the marks, and the cache must hold this history only before anything is served from it."""
        timeline = await primary_timeline(conn)
        if timeline != self.timeline:
            if self.timeline is not None:
                log.warning("relay.primary_timeline_changed", relay=self.name, was=self.timeline, now=timeline)
            # Marks are LSNs of the old history; the new one may not reach them for a long time.
            self.memory = CacheMemory(relay_mark=relay_mark_key(self.name))
            self.timeline = timeline
            self._timeline_adopted = False
        if self._timeline_adopted:
            return
        try:
            emptied = await adopt_timeline(self.redis, timeline)
        except REDIS_ERRORS:
            if tolerate_redis:
                return  # retried by every drain until Redis answers
            raise
        self._timeline_adopted = True
        if emptied and self.connected and self.on_connected is not None:
            self.on_connected()  # the near cache may have copied entries of the old history

    async def _forgot(self) -> bool:
        try:
            return await self.memory.forgot(self.scripts)
        except REDIS_ERRORS:
            # Redis is down: the next batch fails and records it; one that comes back empty is caught.
            return False

    def _redis_failed(self, error: str, processed: int, failed: int) -> DrainResult:
        self.last_error = error
        log.warning("relay.redis_failed", relay=self.name, events=failed, error=error)
        self._redis_backoff_s = min(max(self._redis_backoff_s * 2, 0.1), self.settings.max_backoff_s)
        return DrainResult(processed, failed)

    def _on_announcement(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        assert self.on_invalidated is not None
        self.on_invalidated(parse_announcement(str(payload)))

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeping(self, conn: asyncpg.Connection[asyncpg.Record], *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_backlog >= _BACKLOG_EVERY_S:
            self._last_backlog = now
            await record_backlog(conn)
        if force or now - self._last_purge >= _PURGE_EVERY_S:
            self._last_purge = now
            await purge_processed(conn, self.settings.retention_s)

    def status(self) -> dict[str, Any]:
        """For /readyz: is the listener connected, and how is it doing."""
        return {
            "ok": self.connected,
            "relay": self.name,
            "connections": self.connections,
            "processed": self.processed_total,
            "last_batch_age_s": None if self.last_batch_at is None else round(time.time() - self.last_batch_at, 3),
            "last_error": self.last_error,
        }

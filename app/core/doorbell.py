"""The outbox doorbell: wakes the relays after a write committed, off the commit path.

A ``NOTIFY`` inside the write's transaction is paid at COMMIT: Postgres serialises every
committing transaction that notified on one cluster-wide lock, held through the commit's WAL
flush, so at flash-sale concurrency the writes queue behind each other's fsyncs (docs/adr/0016).
Here the write commits without it and calls :meth:`Doorbell.ring`; one task per instance sends
``NOTIFY`` on a connection of its own, at most one per ``interval_s``, carrying the highest outbox
id rung since the last one (a hint: relays claim whatever is due, ADR 0002).

A doorbell can be lost: the process dies between COMMIT and the ring, or the doorbell's connection
is down. The event is in the outbox either way, and the relay's poll (``relay.poll_interval_s``)
finds it: that interval is the bound on a lost doorbell, tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

import asyncpg
import structlog

from app.core.metrics import DOORBELL_NOTIFIES, DOORBELL_RINGS

log = structlog.get_logger("catalog.doorbell")

_NOTIFY = "SELECT pg_notify($1, $2)"
_BACKOFF_MAX_S = 2.0


class Doorbell:
    """Coalesces rings into at most one ``NOTIFY channel, '<highest outbox id>'`` per interval."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        *,
        interval_s: float,
        server_settings: Mapping[str, str] | None = None,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.dsn = dsn
        self.channel = channel
        self.interval_s = interval_s
        # The NOTIFY needs no durability of its own (the event is durable in the outbox): its
        # commit need not wait for a WAL flush.
        self.server_settings = {**(server_settings or {}), "synchronous_commit": "off"}
        self.connect_timeout_s = connect_timeout_s
        self.highest = 0  # the highest outbox id rung
        self.sent = 0  # the highest outbox id a NOTIFY carried
        self.notifies = 0
        self.last_error: str | None = None
        self._rung = asyncio.Event()

    def ring(self, outbox_id: int) -> None:
        """After COMMIT: an event up to ``outbox_id`` is due. Never blocks, never fails."""
        DOORBELL_RINGS.inc()
        self.highest = max(self.highest, outbox_id)
        self._rung.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send the rings until ``stop``; a failed NOTIFY is dropped (the relay's poll is the bound)."""
        waker = asyncio.create_task(self._wake_on(stop), name="doorbell-stop")
        conn: asyncpg.Connection[asyncpg.Record] | None = None
        backoff = 0.0
        try:
            while True:
                await self._rung.wait()
                if stop.is_set():
                    return
                self._rung.clear()
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(
                            self.dsn, timeout=self.connect_timeout_s, server_settings=dict(self.server_settings)
                        )
                    highest = self.highest
                    await conn.execute(_NOTIFY, self.channel, str(highest), timeout=self.connect_timeout_s)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning("doorbell.notify_failed", error=self.last_error, highest=self.highest)
                    await _discard(conn)
                    conn = None
                    backoff = min(max(backoff * 2, 0.05), _BACKOFF_MAX_S)
                    await _sleep_unless(stop, backoff)
                    continue
                backoff = 0.0
                self.last_error = None
                self.sent = max(self.sent, highest)
                self.notifies += 1
                DOORBELL_NOTIFIES.inc()
                # The coalescing window: rings during it ride the next NOTIFY.
                await asyncio.sleep(self.interval_s)
        finally:
            waker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waker
            await _discard(conn)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._rung.set()

    def status(self) -> dict[str, object]:
        return {"highest_rung": self.highest, "highest_sent": self.sent, "notifies": self.notifies,
                "last_error": self.last_error}  # fmt: skip


async def _discard(conn: asyncpg.Connection[asyncpg.Record] | None) -> None:
    if conn is None:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), timeout=1.0)
    if not conn.is_closed():
        conn.terminate()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0 or stop.is_set():
        return
    deadline = time.monotonic() + seconds
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, deadline - time.monotonic()))

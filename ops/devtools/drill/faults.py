"""The faults, one class each: ``inject`` breaks something, the load runs through it for
``hold(scale)`` seconds, ``recover`` repairs it (always, even when the drill is interrupted), and
``verify`` adds any check of the fault's own once the stack has settled.

Faults go through the launcher (``Stack.stop/start``, its pid files) so the stack's own
bookkeeping stays right: an instance killed here is reaped, and restarted like ``ops/dev start``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from app.contracts.events import OUTBOX_CHANNEL, EventType
from app.core.settings import ReplicaSettings
from devtools.drill.checks import connect, poll_until
from devtools.drill.target import Target
from devtools.stack import Stack


@dataclass
class FaultContext:
    stack: Stack
    target: Target
    scale: float
    notes: list[str] = field(default_factory=list)  # shown under the table
    failures: list[str] = field(default_factory=list)  # fail the verdict


class Fault:
    name: ClassVar[str]
    hold_s: ClassVar[float]  # how long the fault lasts at scale 1
    min_hold_s: ClassVar[float] = 1.0
    # Why display reads may fail during this fault, when the only copy of the data is out of reach.
    display_exempt: ClassVar[str | None] = None

    def hold(self, scale: float) -> float:
        return max(self.min_hold_s, self.hold_s * scale)

    async def inject(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    async def recover(self, ctx: FaultContext) -> None:
        return None

    async def verify(self, ctx: FaultContext) -> None:
        return None

    def explain(self, problems: Mapping[str, int]) -> list[str]:
        """Notes on errors this fault is known to cause, for whoever reads the row."""
        return []


class ServiceStopped(Fault):
    """Stop a service the way ``ops/dev stop`` does, start it again the way ``ops/dev start`` does."""

    service: ClassVar[str]

    def service_in(self, ctx: FaultContext) -> str:
        return self.service

    async def inject(self, ctx: FaultContext) -> None:
        await asyncio.to_thread(ctx.stack.stop, self.service_in(ctx))

    async def recover(self, ctx: FaultContext) -> None:
        await asyncio.to_thread(ctx.stack.start, self.service_in(ctx))


class PrimaryStopped(ServiceStopped):
    name = "primary"
    service = "primary"
    hold_s = 8.0
    display_exempt = (
        "with the primary stopped, reads the instances must send to it (a writer's own products "
        "the replica may not have yet) have no other up-to-date copy"
    )


class ReplicaStopped(ServiceStopped):
    name = "replica"
    service = "replica"
    hold_s = 8.0


class RedisRestarted(ServiceStopped):
    """The dev Redis keeps nothing on disk, so it comes back empty: no entries, and no fences.
    On a cluster stack it is ``redis-1``, a master when the stack came up: its replica takes over,
    and it comes back as a replica."""

    name = "redis-restart"
    service = "redis"
    hold_s = 4.0

    def service_in(self, ctx: FaultContext) -> str:
        return ctx.stack.config.redis_nodes[0]


class ReplicaLag(Fault):
    """Replay paused on the replica while WAL keeps arriving: lag grows past the app's bound."""

    name = "replica-lag"
    hold_s = 5.0
    min_hold_s = 2 * ReplicaSettings().max_lag_ms / 1000  # well past the bound, even at small scales

    async def inject(self, ctx: FaultContext) -> None:
        async with connect(ctx.target.replica_dsn) as conn:
            await conn.execute("SELECT pg_wal_replay_pause()")

            async def paused() -> bool:
                return bool(await conn.fetchval("SELECT pg_get_wal_replay_pause_state()") == "paused")

            if not await poll_until(paused, time.monotonic() + 5, 0.01):
                raise RuntimeError("replica replay did not pause")

    async def recover(self, ctx: FaultContext) -> None:
        async with connect(ctx.target.replica_dsn) as conn:
            await conn.execute("SELECT pg_wal_replay_resume()")


class RedisPaused(Fault):
    """Redis frozen (SIGSTOP): connections stay open and nothing answers."""

    name = "redis-pause"
    hold_s = 4.0
    pid: int | None = None

    async def inject(self, ctx: FaultContext) -> None:
        self.pid = ctx.stack.layout.pid(ctx.stack.config.redis_nodes[0])  # on a cluster: a master, failed over
        if self.pid is None:
            raise RuntimeError("redis is not running")
        os.kill(self.pid, signal.SIGSTOP)

    async def recover(self, ctx: FaultContext) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)


class RelayKilled(Fault):
    """Every relay's listener connection terminated by the server, twice, a second apart."""

    name = "relay-kill"
    hold_s = 2.0
    TERMINATE = (
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'catalog.relay'"
    )

    async def inject(self, ctx: FaultContext) -> None:
        counts = []
        async with connect(ctx.target.primary_dsn) as conn:
            for attempt in range(2):
                if attempt:
                    await asyncio.sleep(1.0)
                counts.append(int(await conn.fetchval(self.TERMINATE)))
        ctx.notes.append(f"terminated {' then '.join(map(str, counts))} relay connections")
        if not counts[0]:
            ctx.failures.append("no relay connection to terminate")


class InstanceKilled(Fault):
    """app-1 killed with SIGKILL (no shutdown at all), kept down, then started again."""

    name = "instance-kill"
    hold_s = 5.0
    instance: ClassVar[str] = "app-1"

    async def inject(self, ctx: FaultContext) -> None:
        await asyncio.to_thread(ctx.stack.apps.stop, self.instance, signal.SIGKILL)

    async def recover(self, ctx: FaultContext) -> None:
        await asyncio.to_thread(ctx.stack.start, self.instance)

    def explain(self, problems: Mapping[str, int]) -> list[str]:
        lost = sum(n for kind, n in problems.items() if kind.endswith("(nginx), sent again"))
        if not lost:
            return []
        return [
            f"{lost} writes were in flight on {self.instance} when it died: nginx never replays a POST or "
            "PATCH (docs/faults.md, 'An app instance killed'); the client sent them again, safely"
        ]


class RelayKilledMidDrain(InstanceKilled):
    """A large backlog, and an instance (with its relay) killed while draining it: the survivors
    must finish it and no event may stay unprocessed. The events re-announce each product's current
    version, which the invalidation path applies idempotently.
    """

    name = "relay-mid-drain"
    EVENTS = 100_000  # at scale 1; scaled like the phases, but never under 10,000
    INSERT = """
        WITH p AS (
            SELECT id, version, category_id, row_number() OVER (ORDER BY id) - 1 AS rn
            FROM products WHERE NOT archived
        ), inserted AS (
            INSERT INTO outbox (event_type, aggregate_id, payload)
            SELECT $2, p.id, jsonb_build_object('id', p.id, 'version', p.version,
                                                'category_id', p.category_id, 'old_category_id', p.category_id)
            FROM generate_series(0, $1 - 1) AS g JOIN p ON p.rn = g % (SELECT count(*) FROM p)
            RETURNING id
        )
        SELECT min(id) AS first, max(id) AS last, count(*) AS n FROM inserted
    """
    PROGRESS = "SELECT count(*) FROM outbox WHERE id BETWEEN $1 AND $2"
    first = last = 0

    async def inject(self, ctx: FaultContext) -> None:
        events = max(10_000, round(self.EVENTS * ctx.scale))
        async with connect(ctx.target.primary_dsn) as conn:
            started = time.monotonic()
            async with conn.transaction():
                row = await conn.fetchrow(self.INSERT, events, EventType.PRODUCT_UPDATED.value)
                assert row is not None
                await conn.execute("SELECT pg_notify($1, $2)", OUTBOX_CHANNEL, str(row["last"]))
            self.first, self.last = int(row["first"]), int(row["last"])
            ctx.notes.append(f"{row['n']:,} events inserted in {time.monotonic() - started:.1f} s")
            # Kill as soon as the relays are into it, so the survivor drains most of the backlog.
            inserted = pending = int(row["n"])

            async def started_draining() -> bool:
                nonlocal pending
                pending = int(await conn.fetchval(self.PROGRESS, self.first, self.last))
                return pending < inserted

            await poll_until(started_draining, time.monotonic() + 10, 0.01)
        await super().inject(ctx)
        ctx.notes.append(f"{self.instance} killed with {pending:,} of them pending")

    async def verify(self, ctx: FaultContext) -> None:
        async with connect(ctx.target.primary_dsn) as conn:
            rows = await conn.fetch(
                """SELECT processed_by, count(*) AS n,
                          extract(epoch FROM max(processed_at) - min(min(created_at)) OVER ())::float8 AS took
                   FROM outbox_events WHERE id BETWEEN $1 AND $2 GROUP BY processed_by ORDER BY processed_by""",
                self.first,
                self.last,
            )
        by = {r["processed_by"]: int(r["n"]) for r in rows}
        unprocessed = by.pop(None, 0)
        took = max((float(r["took"]) for r in rows if r["processed_by"] is not None), default=0.0)
        ctx.notes.append(
            f"backlog drained {took:.1f} s after the insert; its id range (with the load's own events "
            "interleaved) processed by " + ", ".join(f"{name} {n:,}" for name, n in by.items())
        )
        if unprocessed:
            ctx.failures.append(f"{unprocessed:,} events left unprocessed")


FAULTS: dict[str, type[Fault]] = {
    f.name: f
    for f in (
        PrimaryStopped,
        ReplicaStopped,
        ReplicaLag,
        RedisRestarted,
        RedisPaused,
        RelayKilled,
        InstanceKilled,
        RelayKilledMidDrain,
    )
}

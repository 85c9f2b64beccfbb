"""ops/drill --ha: the faults Patroni decides about, against the HA stack (``ops/dev up --ha``).

Each row: the standard mixed load through nginx, plus a **ledger**: writers that count every
acknowledged write (2xx) and, once the stack is whole again, look each one up on whichever member
is the primary then. A write is kept when the outbox holds its event: the product at the version
the answer named, written within the same transaction (its ``created_at`` falls just after the
answer's ``updated_at``, the transaction's start; a version re-issued on a new timeline after a
lost write is seconds later). The write path inserts that event in the write's transaction
(docs/consistency.md), so "event there" is "write there".

Faults (Patroni recovers from each by itself; the drill only undoes what it did):

- ``primary-kill``: the primary's Postgres killed (``kill -9`` of the postmaster); its Patroni,
  still holding the leader key, restarts it (crash recovery, fsync on).
- ``primary-freeze``: the primary's Patroni and every Postgres process of it stopped (SIGSTOP): a
  partition as the member sees it. Its leader key expires (ttl), a replica is promoted, HAProxy
  follows; then SIGCONT: the old primary finds itself demoted and rejoins (pg_rewind).
- ``etcd-restart``: the consensus store stopped for a few seconds, then started.
- ``switchover``: ``patronictl switchover``, the planned move.
- ``member-loss``: the primary's WAL senders stopped for a second while writes go on, then the
  primary member lost (Patroni and Postgres ``kill -9``), brought back once another is primary. With
  asynchronous replication the writes acknowledged in that second are on no replica: they are
  lost, and the row counts them. With ``ops/dev up --ha --synchronous`` none may be.

Unavailability is the longest stretch without an acknowledged ledger write (the writers never
pause longer than a few ms); answers are only 2xx or 503, never another 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import cycle, pairwise
from pathlib import Path
from typing import ClassVar

import httpx

from devtools.drill.checks import DB_ERRORS, connect, quiesce, stale_products, watch_drain
from devtools.drill.load import Catalog, Load, read_catalog
from devtools.drill.report import Row, judge
from devtools.drill.target import Target, wait_ready
from devtools.stack import Stack, StackError
from devtools.stack.ha import HA, TTL_S, switchover
from devtools.stack.system import read_pid

BASELINE_S = 3.0
AFTER_S = 4.0
BOUND_S = 60.0  # writes back, the cluster whole again, the outbox drained: each at most this long
LEDGER_WRITERS = 4
LEDGER_PRODUCTS = 16  # the coldest ids, one writer after another on each
LEDGER_TIMEOUT_S = 10.0  # above the app's own bound on a statement (5 s + 1): we see what it answers
LOAD_TIMEOUT_S = 10.0
SAME_TRANSACTION = timedelta(seconds=2)

Progress = Callable[[str], None]
PHASE_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, StackError, *DB_ERRORS)


# ------------------------------------------------------------------ the ledger


@dataclass(frozen=True, slots=True)
class Ack:
    product_id: int
    version: int
    updated_at: datetime
    sent: float  # monotonic, when the request went out
    at: float  # monotonic, when the answer arrived


@dataclass
class Ledger:
    """Writers straight to the instances (round robin), each write a PATCH whose 2xx is recorded."""

    app_urls: list[str]
    admin_token: str
    product_ids: list[int]
    acks: list[Ack] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0  # 5xx other than 503
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._writer(i)) for i in range(LEDGER_WRITERS)]

    async def stop(self) -> None:
        self._stop.set()
        _, pending = await asyncio.wait(self._tasks, timeout=LEDGER_TIMEOUT_S + 1)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _writer(self, index: int) -> None:
        mine = self.product_ids[index::LEDGER_WRITERS]
        urls = cycle(self.app_urls[index % len(self.app_urls) :] + self.app_urls[: index % len(self.app_urls)])
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        price = 100_000 * (index + 1)
        async with httpx.AsyncClient(headers=headers, timeout=LEDGER_TIMEOUT_S) as client:
            for product_id in cycle(mine):
                if self._stop.is_set():
                    return
                price += 1
                sent = time.monotonic()
                try:
                    r = await client.patch(f"{next(urls)}/products/{product_id}", json={"price_cents": price})
                except httpx.HTTPError as exc:
                    self.answers[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                self.answers[str(r.status_code)] += 1
                if r.is_success:
                    body = r.json()
                    updated = datetime.fromisoformat(body["updated_at"])
                    self.acks.append(Ack(product_id, int(body["version"]), updated, sent, time.monotonic()))
                    await asyncio.sleep(0.005)
                else:
                    self.server_errors += r.status_code >= 500 and r.status_code != 503
                    await asyncio.sleep(0.05)

    def longest_gap(self, since: float, until: float) -> float:
        """Seconds of the longest stretch in [since, until] without an acknowledged write."""
        times = [since, *sorted(a.at for a in self.acks if since < a.at < until), until]
        return max(b - a for a, b in pairwise(times))

    async def lost(self, primary_dsn: str) -> list[Ack]:
        """The acknowledged writes whose event the primary does not have."""
        if not self.acks:
            return []
        since = min(a.updated_at for a in self.acks)
        async with connect(primary_dsn) as conn:
            rows = await conn.fetch(
                """SELECT aggregate_id, (payload->>'version')::bigint AS version, created_at
                   FROM outbox_events WHERE aggregate_id = ANY($1::bigint[]) AND created_at >= $2""",
                self.product_ids,
                since,
            )
        events: dict[tuple[int, int], list[datetime]] = {}
        for r in rows:
            events.setdefault((int(r["aggregate_id"]), int(r["version"])), []).append(r["created_at"])
        return [
            a
            for a in self.acks
            if not any(
                a.updated_at <= t < a.updated_at + SAME_TRANSACTION for t in events.get((a.product_id, a.version), [])
            )
        ]


# ------------------------------------------------------------------ processes of a member


def postmaster_pid(stack: Stack, member: str) -> int | None:
    """The member's running postmaster (Postgres's own pid file in its data directory), if any."""
    return read_pid(stack.layout.base_dir / member / "data" / "postmaster.pid")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def member_processes(stack: Stack, member: str) -> list[int]:
    """The member's Patroni, its postmaster and every Postgres process under it."""
    pids = [p for p in (stack.layout.pid(member),) if p is not None]
    if (postmaster := postmaster_pid(stack, member)) is not None:
        pids += [postmaster, *children_of(postmaster)]
    return pids


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# ------------------------------------------------------------------ faults


@dataclass
class HAContext:
    stack: Stack
    target: Target
    ledger: Ledger
    injected_at: float = 0.0
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ha(self) -> HA:
        return self.stack.ha

    @property
    def synchronous(self) -> bool:
        return self.stack.config.synchronous_mode


PRIMARY_GONE = (
    "until Patroni has a primary again, the replicas' lag cannot be measured (against the primary): "
    "reads the cache cannot answer are refused, 503 (no other 5xx)"
)


class HAFault:
    name: ClassVar[str]
    # With asynchronous replication a promotion may leave acknowledged writes behind (the row counts
    # them, and does not fail on them); with synchronous_mode no fault may lose one.
    may_lose_when_async: ClassVar[bool] = False
    settle_s: ClassVar[float] = 1.0  # held this long once writes are back, before recovering
    display_exempt: ClassVar[str | None] = None  # PRIMARY_GONE for faults that take the primary away

    async def inject(self, ctx: HAContext) -> None:
        raise NotImplementedError

    async def recover(self, ctx: HAContext) -> None:
        return None


class PrimaryKilled(HAFault):
    name = "primary-kill"
    display_exempt = PRIMARY_GONE

    async def inject(self, ctx: HAContext) -> None:
        leader = _leader(ctx)
        pid = postmaster_pid(ctx.stack, leader)
        if pid is None:
            raise RuntimeError(f"no postmaster.pid for {leader}")
        os.kill(pid, signal.SIGKILL)
        ctx.notes.append(f"kill -9 of {leader}'s postmaster (pid {pid})")


class PrimaryFrozen(HAFault):
    name = "primary-freeze"
    display_exempt = PRIMARY_GONE
    may_lose_when_async = True  # what was flushed on it but not yet sent when it froze
    pids: list[int]
    member = ""

    async def inject(self, ctx: HAContext) -> None:
        self.member = _leader(ctx)
        self.pids = member_processes(ctx.stack, self.member)
        signal_all(self.pids, signal.SIGSTOP)
        ctx.notes.append(f"SIGSTOP of {self.member}'s Patroni and {len(self.pids) - 1} Postgres processes")

    async def recover(self, ctx: HAContext) -> None:
        signal_all(self.pids, signal.SIGCONT)


class EtcdRestarted(HAFault):
    name = "etcd-restart"
    down_s = 3.0

    async def inject(self, ctx: HAContext) -> None:
        await asyncio.to_thread(ctx.ha.stop, "etcd")
        await asyncio.sleep(self.down_s)
        await asyncio.to_thread(ctx.ha.start_etcd)
        ctx.notes.append(f"etcd stopped for {self.down_s:.0f} s (ttl {TTL_S} s), then started")


class Switchover(HAFault):
    name = "switchover"

    async def inject(self, ctx: HAContext) -> None:
        report = await asyncio.to_thread(switchover, ctx.ha)
        ctx.notes.append(f"patronictl switchover {report['was']} -> {report['leader']} in {report['seconds']:.1f} s")


class MemberLost(HAFault):
    name = "member-loss"
    display_exempt = PRIMARY_GONE
    may_lose_when_async = True
    senders_frozen_s = 1.0
    member = ""

    async def inject(self, ctx: HAContext) -> None:
        self.member = _leader(ctx)
        async with connect(ctx.stack.config.superuser_dsn(ctx.stack.config.port_of(self.member))) as conn:
            senders = [int(r["pid"]) for r in await conn.fetch("SELECT pid FROM pg_stat_replication")]
        if len(senders) != len(ctx.stack.config.members) - 1:
            raise RuntimeError(f"the primary streams to {len(senders)} replicas, not to every other member")
        # WAL senders stopped: what commits now reaches no replica, not even its socket buffers.
        signal_all(senders, signal.SIGSTOP)
        before = len(ctx.ledger.acks)
        try:
            await asyncio.sleep(self.senders_frozen_s)
            acked = len(ctx.ledger.acks) - before
        finally:
            signal_all(member_processes(ctx.stack, self.member), signal.SIGKILL)  # the stopped senders too
        ctx.notes.append(
            f"{self.member}'s WAL senders stopped {self.senders_frozen_s:.0f} s ({acked} writes acknowledged"
            " meanwhile), then the member killed (Patroni and Postgres, kill -9)"
        )

    async def recover(self, ctx: HAContext) -> None:
        await asyncio.to_thread(ctx.ha.restart_member, self.member)


HA_FAULTS: dict[str, type[HAFault]] = {
    f.name: f for f in (PrimaryKilled, PrimaryFrozen, EtcdRestarted, Switchover, MemberLost)
}


def _leader(ctx: HAContext) -> str:
    leader = ctx.ha.leader()
    if leader is None:
        raise RuntimeError("no member is the leader")
    return leader


# ------------------------------------------------------------------ one phase


class HARow(Row, kw_only=True):
    """A :class:`Row` with what only the HA faults measure."""

    mode: str = "asynchronous"
    acknowledged: int = 0
    acknowledged_lost: int = 0
    ledger_server_errors: int = 0  # the ledger's own 5xx other than 503 (server_errors counts them too)
    loss_judged: bool = True
    unavailable_s: float | None = None
    leader_before: str | None = None
    leader_after: str | None = None


def judge_ha(row: HARow) -> HARow:
    if row.loss_judged and row.acknowledged_lost:
        row.failures.append(f"{row.acknowledged_lost} acknowledged writes lost")
    if not row.acknowledged:
        row.failures.append("no write was acknowledged")
    if row.unavailable_s is None or row.unavailable_s > BOUND_S:
        row.failures.append(f"writes not back within {BOUND_S:.0f} s")
    judged = judge(row)
    assert isinstance(judged, HARow)
    return judged


async def _writes_back(ledger: Ledger, after: float, bound_s: float) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        # Sent after the fault: an answer already on its way when it struck proves nothing.
        if any(a.sent > after for a in ledger.acks[-LEDGER_WRITERS * 4 :]):
            return True
        await asyncio.sleep(0.1)
    return False


async def whole(stack: Stack, target: Target, bound_s: float = BOUND_S) -> list[str]:
    """Every member running (one leader, the others streaming), every instance ready."""
    problems = []
    try:
        await asyncio.to_thread(stack.ha.wait_for_members, bound_s)
    except StackError as exc:
        problems.append(str(exc))
    not_ready = await wait_ready(target, bound_s, fully=True)
    if not_ready:
        problems.append(f"instances not ready: {', '.join(not_ready)}")
    return problems


def _replica_dsns(stack: Stack) -> list[str]:
    members = (stack.ha.cluster() or {}).get("members", [])
    return [
        stack.config.superuser_dsn(stack.config.port_of(m["name"]))
        for m in members
        if m.get("role") != "leader" and m["name"] in stack.config.members
    ]


async def run_phase(fault: HAFault, stack: Stack, target: Target, catalog: Catalog, written: set[int]) -> HARow:
    ledger_ids = list(range(catalog.max_product_id - LEDGER_PRODUCTS + 1, catalog.max_product_id + 1))
    ctx = HAContext(stack, target, Ledger(target.app_urls, target.admin_token, ledger_ids))
    load = Load(target.url, target.admin_token, catalog, workers=8, written=written, seed=len(written) + 1,
                timeout_s=LOAD_TIMEOUT_S)  # fmt: skip
    row = HARow(fault=fault.name, mode="synchronous" if ctx.synchronous else "asynchronous",
                display_exempt=fault.display_exempt)  # fmt: skip
    row.leader_before = stack.ha.leader()
    load.start()
    ctx.ledger.start()
    recovered_at = time.monotonic()
    try:
        await asyncio.sleep(BASELINE_S)
        ctx.injected_at = time.monotonic()
        try:
            await fault.inject(ctx)
            if await _writes_back(ctx.ledger, time.monotonic(), BOUND_S):
                await asyncio.sleep(fault.settle_s)
        finally:
            recovered_at = time.monotonic()
            await fault.recover(ctx)
        await asyncio.sleep(AFTER_S)
    finally:
        tally = await load.stop()
        await ctx.ledger.stop()
    ended = time.monotonic()
    for name in ("display_ok", "writes_ok", "writes_refused", "writes_failed", "writes_rejected", "writes_retried",
                 "reads_retried", "server_errors", "ryw_checked", "ryw_refused", "ryw_violations"):  # fmt: skip
        setattr(row, name, getattr(tally, name))
    row.display_reads = tally.display_ok + tally.display_failed
    row.problems = dict(tally.problems)
    row.server_errors += ctx.ledger.server_errors
    row.ledger_server_errors = ctx.ledger.server_errors
    row.acknowledged = len(ctx.ledger.acks)
    gap = ctx.ledger.longest_gap(ctx.injected_at, ended)
    row.unavailable_s = round(gap, 2) if gap < ended - ctx.injected_at else None
    await _after_recovery(row, fault, ctx, recovered_at, written | set(ledger_ids))
    return judge_ha(row)


async def _after_recovery(row: HARow, fault: HAFault, ctx: HAContext, recovered_at: float, ids: set[int]) -> None:
    """The cluster whole, the outbox drained, the replicas caught up; then lost writes and stale pages."""
    stack, target = ctx.stack, ctx.target
    ctx.failures.extend(await whole(stack, target))
    row.leader_after = stack.ha.leader()
    primary = target.primary_dsn
    row.drained_s = await watch_drain(primary, recovered_at, asyncio.create_task(_now()), BOUND_S)
    for replica in _replica_dsns(stack):
        ctx.failures.extend(await quiesce(primary, replica, BOUND_S))
    try:
        lost = await ctx.ledger.lost(primary)
        stale = await stale_products(target.app_urls, primary, target.redis_url, ids)
    except DB_ERRORS as exc:
        ctx.failures.append(f"checks after recovery failed: {type(exc).__name__}: {exc}")
    else:
        row.acknowledged_lost = len(lost)
        row.stale = stale.stale
        ctx.notes.extend(stale.examples)
        if lost:
            more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
            ctx.notes.append("lost: " + ", ".join(f"product {a.product_id} v{a.version}" for a in lost[:5]) + more)
    row.loss_judged = ctx.synchronous or not fault.may_lose_when_async
    if row.acknowledged_lost and not row.loss_judged:
        ctx.notes.append(
            f"{row.acknowledged_lost} of {row.acknowledged} acknowledged writes lost: asynchronous replication "
            "acknowledges before a replica has the WAL (ops/dev up --ha --synchronous closes this)"
        )
    ctx.notes.append("ledger answers: " + ", ".join(f"{n}x {k}" for k, n in sorted(ctx.ledger.answers.items())))
    row.notes = ctx.notes
    row.failures = ctx.failures


async def _now() -> float | None:
    """watch_drain's probe, already done: the HA phase measures from the recover action."""
    return 0.0


async def drill_ha(stack: Stack, faults: list[str] | None = None, *, progress: Progress | None = None) -> list[HARow]:
    if not stack.config.ha:
        raise StackError("ops/drill --ha needs the HA stack: ops/dev up --ha")
    names = list(HA_FAULTS) if faults is None else faults
    say = progress or (lambda _: None)
    target = Target.of(stack)
    problems = await whole(stack, target)
    if problems:
        raise StackError("; ".join(problems))
    catalog = await read_catalog(target.primary_dsn)
    written: set[int] = set()
    rows = []
    for name in names:
        started = time.monotonic()
        say(f"{name}: load {BASELINE_S:.0f} s, the fault until writes are back, then {AFTER_S:.0f} s")
        try:
            row = await run_phase(HA_FAULTS[name](), stack, target, catalog, written)
        except PHASE_ERRORS as exc:
            row = judge_ha(HARow(fault=name, failures=[f"drill error: {exc}"]))
            row.failures.extend(await whole(stack, target))
        rows.append(row)
        say(f"{name}: {'ok' if row.ok else 'FAIL'} ({time.monotonic() - started:.0f} s)")
    return rows


def run_drill_ha(stack: Stack, faults: list[str] | None = None, *, progress: Progress | None = None) -> list[HARow]:
    return asyncio.run(drill_ha(stack, faults, progress=progress))

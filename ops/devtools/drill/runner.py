"""One phase per fault: baseline load, inject, load through the fault, recover, load after, stop,
settle, then look for anything stale. Faults run one at a time on a stack made whole between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from devtools.drill.checks import DB_ERRORS, probe_recovery, quiesce, stale_products, watch_drain
from devtools.drill.faults import FAULTS, Fault, FaultContext
from devtools.drill.load import Catalog, Load, Tally, read_catalog
from devtools.drill.report import Row, judge
from devtools.drill.target import StackDownError, Target, check_running, make_whole
from devtools.stack import Stack, StackError

BASELINE_S = 3.0
AFTER_S = 4.0
# Recovery, draining and settling are each waited for at most this long.
BOUND_S = 60.0

Progress = Callable[[str], None]
# What a phase survives and reports as a failed row, rather than ending the whole drill.
PHASE_ERRORS: tuple[type[BaseException], ...] = (StackError, RuntimeError, *DB_ERRORS)
CHECK_ERRORS: tuple[type[BaseException], ...] = (OSError, RedisError, *DB_ERRORS)


def _row(fault: Fault, tally: Tally) -> Row:
    return Row(
        fault=fault.name,
        display_reads=tally.display_ok + tally.display_failed,
        display_ok=tally.display_ok,
        writes_ok=tally.writes_ok,
        writes_refused=tally.writes_refused,
        writes_failed=tally.writes_failed,
        writes_rejected=tally.writes_rejected,
        writes_retried=tally.writes_retried,
        reads_retried=tally.reads_retried,
        server_errors=tally.server_errors,
        ryw_checked=tally.ryw_checked,
        ryw_refused=tally.ryw_refused,
        ryw_violations=tally.ryw_violations,
        display_exempt=fault.display_exempt,
        problems=dict(tally.problems),
    )


async def run_phase(
    fault: Fault, ctx: FaultContext, catalog: Catalog, written: set[int], *, workers: int, seed: int
) -> Row:
    """Run the load through one fault and measure it; the fault is recovered whatever happens."""
    target, scale = ctx.target, ctx.scale
    probe_id = catalog.max_product_id  # a cold product, so the probe does not disturb the hot set
    written.add(probe_id)
    load = Load(target.url, target.admin_token, catalog, workers=workers, written=written, seed=seed)
    load.start()
    tasks: list[asyncio.Task[float | None]] = []
    try:
        await asyncio.sleep(BASELINE_S * scale)
        try:
            await fault.inject(ctx)
            await asyncio.sleep(fault.hold(scale))
        finally:
            recovered_at = time.monotonic()
            # The probe runs alongside the recover action, so a fault that never stopped writes reads ~0.
            probe = asyncio.create_task(probe_recovery(target.url, target.admin_token, probe_id, recovered_at, BOUND_S))
            tasks.append(probe)
            await fault.recover(ctx)
        tasks.append(asyncio.create_task(watch_drain(target.primary_dsn, recovered_at, probe, BOUND_S)))
        await asyncio.sleep(AFTER_S * scale)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        tally = await load.stop()
    row = _row(fault, tally)
    row.recovery_s, row.drained_s = await asyncio.gather(*tasks)
    ctx.failures.extend(await quiesce(target.primary_dsn, target.replica_dsn, BOUND_S))
    await fault.verify(ctx)
    try:
        stale = await stale_products(
            target.app_urls,
            target.primary_dsn,
            target.redis_url,
            written | set(catalog.hot_ids),
            redis_cluster=target.redis_cluster,
        )
    except CHECK_ERRORS as exc:
        ctx.failures.append(f"stale check failed: {type(exc).__name__}")
    else:
        row.stale = stale.stale
        ctx.notes.extend(stale.examples)
        if stale.unreadable:
            ctx.failures.append(f"{stale.unreadable} product reads failed after quiesce")
    if row.recovery_s is None:
        ctx.notes.append(f"writes did not recover within {BOUND_S:.0f} s")
    row.notes = ctx.notes + fault.explain(tally.problems) + tally.examples
    row.failures = ctx.failures
    return judge(row)


async def drill(
    stack: Stack,
    faults: list[str] | None = None,
    *,
    scale: float = 1.0,
    workers: int = 8,
    progress: Progress | None = None,
) -> list[Row]:
    """Run ``faults`` (default: all, in :data:`FAULTS` order) one at a time; one :class:`Row` each.

    Raises :class:`~devtools.drill.target.StackDownError` if the stack is not up to begin with.
    Whatever happens, the stack is left whole: every service running, every instance ready.
    """
    names = list(FAULTS) if faults is None else faults
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s): {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    say = progress or (lambda _: None)
    target = Target.of(stack)
    check_running(stack)
    await make_whole(stack, target)
    catalog = await read_catalog(target.primary_dsn)
    written: set[int] = set()
    rows: list[Row] = []
    try:
        for index, name in enumerate(names):
            fault = FAULTS[name]()
            started = time.monotonic()
            hold = fault.hold(scale)
            say(f"{name}: load {BASELINE_S * scale:.1f} s, fault {hold:.1f} s, then {AFTER_S * scale:.1f} s")
            ctx = FaultContext(stack, target, scale)
            try:
                ctx.notes.extend(await make_whole(stack, target))
                row = await run_phase(fault, ctx, catalog, written, workers=workers, seed=index + 1)
            except StackDownError:
                raise  # nothing more can be measured on this stack
            except PHASE_ERRORS as exc:
                row = judge(Row(fault=name, notes=ctx.notes, failures=[*ctx.failures, f"drill error: {exc}"]))
            rows.append(row)
            say(f"{name}: {'ok' if row.ok else 'FAIL'} ({time.monotonic() - started:.0f} s)")
    finally:
        await make_whole(stack, target)
    return rows


def run_drill(
    stack: Stack,
    faults: list[str] | None = None,
    *,
    scale: float = 1.0,
    workers: int = 8,
    progress: Progress | None = None,
) -> list[Row]:
    """Blocking :func:`drill`, for the CLI and the tests."""
    return asyncio.run(drill(stack, faults, scale=scale, workers=workers, progress=progress))

"""One relay batch: claim due events, apply their invalidation to Redis, record them processed.

The claim (``FOR UPDATE SKIP LOCKED``) deletes the events from the outbox and files the batch as
one ``outbox_processed`` row in the same statement (docs/adr/0013), inside a transaction committed
only after Redis succeeded: a relay that dies mid-batch leaves its events in the outbox for the
next one, and several relays never apply the same event at once. When Redis fails the claim rolls
back and the events keep their place, with ``attempts``, ``last_error`` and a capped exponential
``next_attempt_at``. Nothing is dropped.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import structlog

from app.contracts.cache_keys import relay_mark_key
from app.contracts.cache_scripts import CacheScripts
from app.contracts.events import INVALIDATION_CHANNEL, encode_announcements
from app.core.db import lsn_to_int
from app.core.metrics import (
    INVALIDATION_LATENCY,
    OUTBOX_BATCH_SIZE,
    OUTBOX_FAILED,
    OUTBOX_PROCESSED,
    OUTBOX_UNPARSED,
    observe_many,
)
from app.core.redis import REDIS_ERRORS
from app.core.sql import queries
from app.invalidation.plan import InvalidationPlan, apply_plan

Q = queries("outbox")
log = structlog.get_logger("catalog.relay")
_ANNOUNCEMENT = re.compile(r"[0-9:,-]+")


@dataclass(frozen=True, slots=True)
class BatchOptions:
    relay_name: str  # recorded in outbox_processed.processed_by
    batch_size: int
    fence_ttl_ms: int
    generation_interval_ms: int
    max_backoff_s: float
    # A batch of at most this many products reports which of them were cached, to refresh (0: none).
    refresh_max_products: int = 0


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    processed: int
    failed: int
    error: str | None = None
    # A mark was missing or lower than the relay saw when this batch was applied: Redis lost keys.
    forgotten: bool = False
    lsn: int = 0  # the primary position this batch raised the mark to
    # The newest version of each product the batch invalidated whose entry was cached: read
    # recently, so worth putting back (refresh.py); products nobody had cached are left to readers.
    refresh: dict[int, int] = field(default_factory=dict)


async def process_batch(
    conn: asyncpg.Connection[asyncpg.Record],
    scripts: CacheScripts,
    options: BatchOptions,
    *,
    marks: tuple[int, int] = (0, 0),
) -> BatchOutcome:
    """Claim, apply and file one batch; a Redis failure rolls the claim back and records it.

    Three Postgres round trips (BEGIN, claim-and-file, announce-and-COMMIT) and one Redis round
    trip, whatever the batch size. That round trip also checks that Redis forgot nothing: ``marks`` are
    the highest ``cache:mark`` the relay has seen and the highest it raised its own mark to
    (recovery.py); a Redis holding less is ``forgotten``.
    """
    error: str | None = None
    remembered = True
    try:
        # By hand, not conn.transaction(): the announcements ride in COMMIT's own round trip.
        await conn.execute("BEGIN")
        claim = await conn.fetchrow(Q["claim_batch"], options.batch_size, options.relay_name)
        if claim is None:  # nothing due
            await conn.execute("COMMIT")
            return BatchOutcome(0, 0)
        ids: list[int] = claim["ids"]
        plan = InvalidationPlan.of(claim["payloads"])
        if plan.rejected:
            # A writer outside the contract: nothing to invalidate for it. Quarantined with the
            # reason in this transaction, the rest of the batch applied as usual: never one by one.
            OUTBOX_UNPARSED.inc(plan.unparsed)
            at = [position for position, _ in plan.rejected]
            await conn.execute(
                Q["quarantine_events"], [ids[i] for i in at], [claim["event_types"][i] for i in at],
                [claim["payloads"][i] for i in at], [reason for _, reason in plan.rejected], options.relay_name,
            )  # fmt: skip
            log.error("relay.events_quarantined", events=plan.unparsed, first_id=ids[at[0]], reason=plan.rejected[0][1])
        # Read in the claim, after every claimed event committed: at or past each commit record.
        lsn = lsn_to_int(claim["lsn"])
        cached: set[int] | None = set() if 0 < len(plan.versions) <= options.refresh_max_products else None
        commit = announce_and_commit(plan.versions)  # before Redis: a payload it refuses fails nothing applied
        try:
            remembered = await apply_plan(
                scripts,
                plan,
                options.fence_ttl_ms,
                lsn=lsn,
                generation_interval_ms=options.generation_interval_ms,
                relay_mark=relay_mark_key(options.relay_name),
                cached=cached,
                seen=marks[0],
                own=marks[1],
            )
        except REDIS_ERRORS as exc:
            error = f"redis: {type(exc).__name__}: {exc}"[:500]
        # Announced at COMMIT to every instance's near cache (docs/adr/0005).
        await conn.execute(commit if error is None else "ROLLBACK")
    except BaseException:
        if not conn.is_closed() and conn.is_in_transaction():
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        raise
    event_types: list[str] = claim["event_types"]
    if error is not None:
        # The claim and its record are rolled back; record the failure so ops can see it, and back off.
        await conn.execute(Q["mark_failed"], ids, error, options.max_backoff_s)
        for event_type, count in Counter(event_types).items():
            OUTBOX_FAILED.labels(event_type).inc(count)
        return BatchOutcome(0, len(ids), error)
    _observe(event_types, claim["created_at"])
    refresh = {product: plan.versions[product] for product in cached} if cached else {}
    return BatchOutcome(len(ids), 0, forgotten=not remembered, lsn=lsn, refresh=refresh)


def announce_and_commit(versions: dict[int, int]) -> str:
    """``COMMIT``, preceded by the batch's announcements in the same simple query: one round trip.

    A simple query takes no parameters, so the payloads are literals; they hold only digits, ``:``
    and ``,`` (``encode_announcements`` formats integers). Should the NOTIFY fail, the COMMIT after
    it in the same query is skipped and the transaction stays aborted for the caller's ROLLBACK.
    """
    if not versions:
        return "COMMIT"
    payloads = encode_announcements(versions)
    if not all(_ANNOUNCEMENT.fullmatch(p) for p in payloads):
        raise ValueError(f"an announcement holds more than integers: {payloads!r}"[:300])
    literals = ",".join(f"'{p}'" for p in payloads)
    return f"SELECT pg_notify('{INVALIDATION_CHANNEL}', p) FROM unnest(ARRAY[{literals}]) AS p; COMMIT"  # noqa: S608


def _observe(event_types: list[str], created_at: list[float]) -> None:
    now = time.time()
    OUTBOX_BATCH_SIZE.observe(len(event_types))
    # Still one observation per event (the metric's meaning), counted per bucket.
    observe_many(INVALIDATION_LATENCY, [max(0.0, now - created) for created in created_at])
    for event_type, count in Counter(event_types).items():
        OUTBOX_PROCESSED.labels(event_type).inc(count)

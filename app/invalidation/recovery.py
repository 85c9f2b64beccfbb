"""Cache amnesia: noticing that Redis lost keys, and making that harmless (docs/adr/0009).

Redis can forget (a restart without persistence, a failover to a replica that missed writes, a
flush). The fences go with it, and a reader could then fill an old row from a lagging replica
and keep it until TTL. Every applied batch raises ``cache:mark`` to the primary position it
covers (never creating it), so a Redis that lost keys shows it: the mark is missing, or lower
than a mark this relay has seen. The relay then re-applies every invalidation processed within
the fence TTL (the span fences are meant to cover) before setting the mark again: fences come
back, entries filled in the meantime are deleted, list generations move on, and the near caches
hear it all as announcements.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import structlog

from app.contracts.cache_keys import CACHE_MARK, lsn_hex, parse_lsn_hex, shard_key
from app.contracts.cache_scripts import CacheScripts
from app.contracts.events import encode_announcements
from app.core.db import lsn_to_int
from app.core.metrics import CACHE_AMNESIA
from app.core.sql import queries
from app.invalidation.batch import BatchOptions
from app.invalidation.plan import InvalidationPlan, apply_plan

Q = queries("outbox")
log = structlog.get_logger("catalog.relay")


@dataclass(slots=True)
class CacheMemory:
    """What one relay knows of the cache's marks: the highest it has written or seen."""

    relay_mark: str | None = None  # this relay's own mark key (cache:mark:<name>), if it has one
    seen: int = 0  # the highest cache:mark read or raised
    own: int = 0  # the highest position this relay raised its own mark to

    def raised(self, lsn: int) -> None:
        """A batch of ours raised both marks to ``lsn`` (and committed)."""
        self.seen = max(self.seen, lsn)
        self.own = max(self.own, lsn)

    async def forgot(self, scripts: CacheScripts) -> bool:
        """Has Redis lost keys since this relay last looked? (Redis errors propagate.)

        ``cache:mark`` missing or lower than we saw: Redis lost keys. Our own mark lower than we
        raised it: a failover lost a batch of ours, even if another relay's batch, claimed after
        ours but applied before it, had already raised ``cache:mark`` past it. Under Redis Cluster
        every shard has both marks and is judged alone: one shard forgetting is enough.
        """
        tags = await scripts.refresh_mark_tags()
        keys = [shard_key(CACHE_MARK, tag) for tag in tags]
        if self.relay_mark is not None:
            keys += [shard_key(self.relay_mark, tag) for tag in tags]
        async with scripts.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
            values = [parse_lsn_hex(value) for value in await pipe.execute()]
        marks, owns = values[: len(tags)], values[len(tags) :]
        if any(mark is None or mark < self.seen for mark in marks):
            return True
        if self.own and any(own is None or own < self.own for own in owns):
            return True
        self.seen = max(self.seen, min(mark for mark in marks if mark is not None))
        return False

    async def recover(
        self, conn: asyncpg.Connection[asyncpg.Record], scripts: CacheScripts, options: BatchOptions, window_s: float
    ) -> int:
        """Re-apply the invalidations processed within ``window_s``, then set the mark; returns how many."""
        CACHE_AMNESIA.inc()
        # Everything committed before this position is covered once the re-apply below is done.
        lsn = lsn_to_int(await conn.fetchval(Q["wal_insert_lsn"]))
        reapplied = 0
        after_batch = 0
        # Batch by batch, as the relays filed them (outbox_processed: one row per applied batch).
        while (row := await conn.fetchrow(Q["recently_processed"], float(window_s), after_batch)) is not None:
            plan = InvalidationPlan.of(row["payloads"])
            await apply_plan(
                scripts, plan, options.fence_ttl_ms, lsn=lsn, generation_interval_ms=options.generation_interval_ms
            )
            if plan.versions:
                await conn.execute(Q["announce_invalidations"], encode_announcements(plan.versions))
            reapplied += len(row["payloads"])
            after_batch = row["id"]
        async with scripts.redis.pipeline(transaction=False) as pipe:
            for key in (CACHE_MARK, self.relay_mark):
                for tag in scripts.mark_tags:
                    if key is not None:
                        pipe.set(shard_key(key, tag), lsn_hex(lsn))
            await pipe.execute()
        self.raised(lsn)
        log.warning("relay.cache_amnesia_recovered", reapplied=reapplied, window_s=window_s, mark=lsn_hex(lsn))
        return reapplied

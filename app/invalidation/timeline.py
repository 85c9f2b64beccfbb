"""A new primary timeline: the cache may hold versions that no longer exist (docs/adr/0014).

After a failover the promoted replica continues the history only up to what it had replayed;
commits the old primary had not shipped are gone, and with them their outbox rows. Redis may
still hold what the relay did for them: a fence at a version the product has not reached on the
new timeline (every fill of the rewritten row refused until the fence expires) or an entry of a
version that never happened there (served as if true). Versions are per-row counters, so the
same number can come back with other contents.

So the cache remembers which history it holds, ``cache:timeline`` = ``<system identifier>:
<timeline>``, and a relay that connects to a primary of another history empties the cache before
it resumes its near cache or processes anything. A missing key is only set: a new or emptied
Redis holds no other history, and what it lost is the amnesia mark's business. That is cache
amnesia in reverse: the marks go too, so every relay then re-applies the invalidations processed
on the new timeline within the fence TTL (recovery.py), which puts back the fences of versions
that do exist.
"""

from __future__ import annotations

import asyncpg
import structlog

from app.contracts.cache_keys import CACHE_TIMELINE
from app.core.metrics import CACHE_TIMELINE_CHANGES
from app.core.redis import RedisClient
from app.core.sql import queries

Q = queries("outbox")
log = structlog.get_logger("catalog.relay")

_UNLINK_CHUNK = 500


async def primary_timeline(conn: asyncpg.Connection[asyncpg.Record]) -> str:
    """``<system identifier>:<timeline>`` of the primary ``conn`` is on."""
    return str(await conn.fetchval(Q["primary_timeline"]))


async def empty_cache(redis: RedisClient) -> int:
    """Delete every key of the cache (all of it derives from the database); returns how many."""
    deleted = 0
    chunk: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        chunk.append(key)
        if len(chunk) >= _UNLINK_CHUNK:
            deleted += await _unlink(redis, chunk)
            chunk = []
    if chunk:
        deleted += await _unlink(redis, chunk)
    return deleted


async def _unlink(redis: RedisClient, keys: list[bytes]) -> int:
    # One key per command: under Redis Cluster the keys of a chunk live in many slots.
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.unlink(key)
        return sum(int(n) for n in await pipe.execute())


async def adopt_timeline(redis: RedisClient, timeline: str) -> bool:
    """Make the cache hold ``timeline``'s history only; True if it had to be emptied first."""
    raw = await redis.get(CACHE_TIMELINE)
    held = raw.decode() if isinstance(raw, bytes) else raw
    if held == timeline:
        return False
    if held is None and await redis.set(CACHE_TIMELINE, timeline, nx=True):
        # A new or emptied Redis (the amnesia mark covers what it lost): nothing says its keys
        # belong to another history, and emptying every cache on a first deploy buys nothing.
        return False
    deleted = await empty_cache(redis)
    # Set last: a relay that fails in between finds the key missing or old and empties again.
    await redis.set(CACHE_TIMELINE, timeline)
    CACHE_TIMELINE_CHANGES.inc()
    log.warning(
        "relay.cache_timeline_changed",
        held=held,
        timeline=timeline,
        keys_deleted=deleted,
    )
    return True

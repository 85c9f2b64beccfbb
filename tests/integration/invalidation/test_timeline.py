"""A relay meeting a primary of another timeline empties the cache; a missing timeline only sets it
(docs/adr/0014). The whole failover runs in tests/system/test_failover.py."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.contracts.cache_keys import CACHE_MARK, CACHE_TIMELINE, fence_key, lsn_hex, product_key
from app.core.db import init_connection
from app.invalidation.relay import OutboxRelay
from app.invalidation.timeline import primary_timeline
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration


async def _relay_drains_once(db: ScratchDatabase, redis_client: aioredis.Redis) -> tuple[OutboxRelay, str]:
    settings = db.settings(relay_enabled=True)
    relay = OutboxRelay("r", settings.db.primary_dsn, redis_client, settings.relay, settings.cache)
    conn = await asyncpg.connect(settings.db.primary_dsn)
    try:
        await init_connection(conn)
        timeline = await primary_timeline(conn)
        await relay.drain(conn)
    finally:
        await conn.close()
    return relay, timeline


async def test_a_cache_of_another_timeline_is_emptied_and_a_missing_timeline_only_set(
    db: ScratchDatabase, redis_client: aioredis.Redis
) -> None:
    # The old timeline's keys: a fence and an entry of a version this database never had.
    await redis_client.set(CACHE_TIMELINE, "7000000000000000000:1")
    await redis_client.set(CACHE_MARK, lsn_hex(1 << 40))  # an LSN the new timeline is far from
    await redis_client.set(fence_key(7), b"99")
    await redis_client.set(product_key(7), b'99|{"lost":true}')

    relay, timeline = await _relay_drains_once(db, redis_client)

    system_identifier, _, number = timeline.partition(":")
    assert int(system_identifier) > 0
    assert int(number) >= 1
    assert await redis_client.get(CACHE_TIMELINE) == timeline.encode()
    assert await redis_client.exists(fence_key(7), product_key(7)) == 0
    # The mark is this timeline's again (the amnesia re-apply set it), and the relay does not
    # judge it against the old one's higher LSN.
    mark = await redis_client.get(CACHE_MARK)
    assert mark is not None
    assert int(mark, 16) < 1 << 40
    assert relay.memory.seen == int(mark, 16)

    # A Redis that lost the key (or never had it) keeps what it holds; the key is set.
    await redis_client.delete(CACHE_TIMELINE)
    await redis_client.set(product_key(8), b"1|{}")
    await _relay_drains_once(db, redis_client)
    assert await redis_client.get(CACHE_TIMELINE) == timeline.encode()
    assert await redis_client.exists(product_key(8)) == 1

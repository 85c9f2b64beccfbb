"""Cache amnesia on Redis Cluster: ONE shard forgets (its master restarted empty, or failed over to
a replica that missed writes) while the others keep their keys.

A single ``cache:mark`` lives on one shard and cannot see another forget: the fences on the
forgetful shard are gone and a stale fill there stays until its TTL. With a mark per master
(docs/adr/0015) the relay notices on its next drain and re-applies the recent invalidations.
"""

from __future__ import annotations

import json

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.contracts.cache_keys import CACHE_MARK, fence_key, product_key, shard_key
from app.contracts.cache_scripts import CacheScripts
from app.core.db import init_connection
from app.core.redis import slot_of
from app.invalidation.plan import InvalidationPlan, apply_plan, product_groups
from app.invalidation.relay import OutboxRelay
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration
PRODUCTS = range(1, 41)  # enough to land on every shard
VERSION = 9


def _master_of(client: RedisCluster, key: str) -> Redis:
    node = client.get_node_from_key(key)
    assert node is not None
    return Redis(host=node.host, port=int(node.port))


async def _drain_events(relay: OutboxRelay, primary: asyncpg.Connection, conn: asyncpg.Connection) -> None:
    for product_id in PRODUCTS:
        payload = {"id": product_id, "version": VERSION, "category_id": 1, "old_category_id": 1}
        await primary.execute(
            "INSERT INTO outbox (event_type, aggregate_id, payload) VALUES ('product.updated', $1, $2::jsonb)",
            product_id,
            json.dumps(payload),
        )
    assert (await relay.drain(conn)).processed == len(PRODUCTS)


@pytest.mark.parametrize("per_shard", [False, True], ids=["one-mark", "mark-per-shard"])
async def test_one_shard_forgetting_is_noticed_and_healed(
    cluster: RedisCluster,
    db: ScratchDatabase,
    primary: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    per_shard: bool,
) -> None:
    tags = await CacheScripts(cluster).refresh_mark_tags()
    assert len(tags) == 3, "a mark per master"
    victim = 7
    victim_node = cluster.get_node_from_key(fence_key(victim))
    victim_tag = next(t for t in tags if cluster.get_node_from_key(f"{{{t}}}") == victim_node)
    if not per_shard:
        # The single-Redis design on a cluster: one mark, on a shard that is not the one forgetting.
        other = next(t for t in tags if t != victim_tag)
        monkeypatch.setattr(CacheScripts, "refresh_mark_tags", lambda self: _tags(self, [other]))
    settings = db.settings()
    relay = OutboxRelay("r", settings.db.primary_dsn, cluster, settings.relay, settings.cache)
    conn = await asyncpg.connect(settings.db.primary_dsn)
    try:
        await init_connection(conn)
        await _drain_events(relay, primary, conn)
        assert await cluster.get(fence_key(victim)) == b"%d" % VERSION

        # The victim's shard restarts empty; the other shards keep everything, their marks too.
        master = _master_of(cluster, fence_key(victim))
        try:
            await master.flushall()
        finally:
            await master.aclose()
        survivors = [t for t in relay.scripts.mark_tags if t != victim_tag]
        assert all([await cluster.get(shard_key(CACHE_MARK, t)) is not None for t in survivors])
        assert await cluster.get(fence_key(victim)) is None
        await cluster.set(product_key(victim), b"8|{}")  # a reader filled an old row meanwhile

        await relay.drain(conn)  # nothing new to do: only the marks can tell
        if per_shard:
            assert await cluster.get(fence_key(victim)) == b"%d" % VERSION, "the shard's fences came back"
            assert await cluster.get(product_key(victim)) is None, "the stale entry was dropped"
            assert all([await cluster.get(shard_key(CACHE_MARK, t)) is not None for t in tags])
        else:
            assert await cluster.get(product_key(victim)) == b"8|{}", "one mark cannot see another shard forget"
    finally:
        await conn.close()


async def _tags(scripts: CacheScripts, tags: list[str]) -> list[str]:
    scripts.mark_tags = tags
    return tags


async def test_a_batch_runs_one_script_per_slot_and_reaches_every_shard(cluster: RedisCluster) -> None:
    scripts = CacheScripts(cluster)
    await scripts.refresh_mark_tags()
    versions = dict.fromkeys(range(1, 1001), 3)
    groups = product_groups(versions, by_slot=True)
    assert all(len({slot_of(fence_key(p)) for p, _ in group}) == 1 for group in groups)
    plan = InvalidationPlan(versions=versions, categories={1}, lists=True)
    await cluster.set(shard_key(CACHE_MARK, scripts.mark_tags[0]), "0" * 16)
    for tag in scripts.mark_tags[1:]:
        await cluster.set(shard_key(CACHE_MARK, tag), "0" * 16)
    assert await apply_plan(scripts, plan, 60_000, lsn=5, generation_interval_ms=1000, relay_mark="cache:mark:t")
    fences = await cluster.mget_nonatomic([fence_key(p) for p in versions])
    assert fences == [b"3"] * len(versions)

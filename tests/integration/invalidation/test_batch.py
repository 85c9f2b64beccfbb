"""One relay batch: its round trips, its set-based claim-and-mark, and what a rollback leaves behind."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from app.contracts.cache_keys import CACHE_MARK, fence_key, lsn_hex, product_key
from app.contracts.cache_scripts import CacheScripts
from app.contracts.events import INVALIDATION_CHANNEL, parse_announcement
from app.core.db import init_connection
from app.core.sql import queries
from app.invalidation import batch as batch_module
from app.invalidation.batch import BatchOptions, process_batch
from app.invalidation.plan import InvalidationPlan, apply_plan
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration
Q = queries("outbox")
EVENTS = 1_500
PRODUCTS = 300  # five events per product: only the newest version of each may reach Redis


def _options(name: str, batch_size: int = 2_000) -> BatchOptions:
    return BatchOptions(
        relay_name=name, batch_size=batch_size, fence_ttl_ms=60_000, generation_interval_ms=0, max_backoff_s=1.0
    )


async def _insert_events(primary: asyncpg.Connection) -> None:
    await primary.execute(
        """INSERT INTO outbox (event_type, aggregate_id, payload)
           SELECT 'product.updated', g % $2 + 1,
                  jsonb_build_object('id', g % $2 + 1, 'version', g, 'category_id', g % 7 + 1,
                                     'old_category_id', g % 7 + 1)
           FROM generate_series(1, $1) AS g""",
        EVENTS,
        PRODUCTS,
    )


@pytest.fixture
async def relay_conn(db: ScratchDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db.settings().db.primary_dsn)
    await init_connection(conn)
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_batch_is_three_postgres_round_trips_and_one_redis_round_trip(
    relay_conn: asyncpg.Connection,
    redis_client: aioredis.Redis,
    primary: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _insert_events(primary)
    await redis_client.set(CACHE_MARK, lsn_hex(1))
    for pid in range(1, PRODUCTS + 1):
        await redis_client.set(product_key(pid), b"1|stale")
    announced: list[tuple[int, int]] = []
    await primary.add_listener(INVALIDATION_CHANNEL, lambda *a: announced.extend(parse_announcement(a[-1])))
    scripts = CacheScripts(redis_client)
    for script in (
        scripts.fence_and_delete_many,
        scripts.bump_generation,
        scripts.raise_mark,
        scripts.raise_relay_mark,
    ):
        await redis_client.script_load(script.script)  # as after the relay's first batch

    calls: Counter[str] = Counter()

    def counting(cls: type, name: str) -> None:
        original = getattr(cls, name)

        def wrapper(self: object, *args: object, **kwargs: object) -> object:
            calls[f"{cls.__name__}.{name}"] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    for method in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
        counting(asyncpg.connection.Connection, method)
    for method in ("execute", "immediate_execute_command"):
        counting(Pipeline, method)
    counting(aioredis.Redis, "execute_command")

    outcome = await process_batch(relay_conn, scripts, _options("counted"))
    monkeypatch.undo()

    assert (outcome.processed, outcome.failed, outcome.error) == (EVENTS, 0, None)
    # BEGIN, claim-and-mark, announce-and-COMMIT; one pipeline, nothing sent outside it (no SCRIPT EXISTS).
    pg_calls = sum(n for name, n in calls.items() if name.startswith("Connection."))
    assert pg_calls == 3, calls
    assert calls["Pipeline.execute"] == 1, calls
    assert calls["Pipeline.immediate_execute_command"] == 0, calls
    assert calls["Redis.execute_command"] == 0, calls
    # Every event was marked by that one claim, once, by this relay.
    marked = await primary.fetchrow(
        "SELECT count(*) FILTER (WHERE processed_by = 'counted' AND attempts = 1 AND processed_at IS NOT NULL) AS ok,"
        " count(*) AS total FROM outbox_events"
    )
    assert (marked["ok"], marked["total"]) == (EVENTS, EVENTS)
    filed = await primary.fetchrow("SELECT count(*) AS batches, sum(events) AS events FROM outbox_processed")
    assert (filed["batches"], filed["events"]) == (1, EVENTS), "the batch is filed as one row"
    assert await primary.fetchval("SELECT count(*) FROM outbox") == 0, "and leaves the outbox"
    newest = {
        r["aggregate_id"]: r["version"]
        for r in await primary.fetch(
            "SELECT aggregate_id, max((payload->>'version')::bigint) AS version FROM outbox_events GROUP BY 1"
        )
    }
    for pid, version in newest.items():
        assert int(await redis_client.get(fence_key(pid))) == version
        assert not await redis_client.exists(product_key(pid))
    for _ in range(100):
        if len(announced) >= PRODUCTS:
            break
        await asyncio.sleep(0.01)
    assert dict(announced) == newest, "the near caches hear each product once, at its newest version"


async def test_a_failed_announce_rolls_the_claim_back_and_leaves_the_connection_usable(
    relay_conn: asyncpg.Connection,
    redis_client: aioredis.Redis,
    primary: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The announcements and COMMIT are one simple query: when the first statement fails, the
    COMMIT after it is skipped, the transaction is left aborted, and the batch rolls it back."""
    await _insert_events(primary)
    monkeypatch.setattr(batch_module, "announce_and_commit", lambda _versions: "SELECT 1 / 0; COMMIT")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await process_batch(relay_conn, CacheScripts(redis_client), _options("failing"))
    assert not relay_conn.is_in_transaction()
    assert await relay_conn.fetchval("SELECT 1") == 1
    assert await primary.fetchval("SELECT count(*) FROM outbox") == EVENTS, "the claim was rolled back"
    monkeypatch.undo()
    outcome = await process_batch(relay_conn, CacheScripts(redis_client), _options("again"))
    assert (outcome.processed, outcome.failed) == (EVENTS, 0)


async def test_claimed_events_stay_pending_to_others_until_commit_and_return_on_rollback(
    db: ScratchDatabase, relay_conn: asyncpg.Connection, primary: asyncpg.Connection
) -> None:
    await _insert_events(primary)
    other = await asyncpg.connect(db.settings().db.primary_dsn)
    tx = relay_conn.transaction()
    await tx.start()
    try:
        claim = await relay_conn.fetchrow(Q["claim_batch"], 1_000, "first")
        assert len(claim["ids"]) == 1_000
        # Marked inside the claim, but invisible to everyone else until the relay commits after Redis.
        assert await primary.fetchval("SELECT count(*) FROM outbox_events WHERE processed_at IS NULL") == EVENTS
        async with other.transaction():
            second = await other.fetchrow(Q["claim_batch"], 2_000, "second")
        assert set(second["ids"]).isdisjoint(claim["ids"]), "SKIP LOCKED: never two relays on one event"
        assert len(second["ids"]) == EVENTS - 1_000
    finally:
        await tx.rollback()  # what Redis failing, or the relay dying, amounts to
        await other.close()
    pending = await primary.fetch("SELECT id, processed_by, attempts FROM outbox_events WHERE processed_at IS NULL")
    assert {r["id"] for r in pending} == set(claim["ids"]), "the rolled-back claim is due again, the other kept"
    assert all(r["processed_by"] is None and r["attempts"] == 0 for r in pending), "the rollback undid the mark"
    filed = await primary.fetch("SELECT processed_by FROM outbox_processed")
    assert [r["processed_by"] for r in filed] == ["second"], "only the committed claim was filed"


async def test_scripts_the_server_forgot_are_loaded_again(redis_client: aioredis.Redis) -> None:
    scripts = CacheScripts(redis_client)
    plan = InvalidationPlan.of([{"id": 5, "version": 3, "category_id": 1, "old_category_id": 1}])
    await redis_client.set(CACHE_MARK, lsn_hex(1))
    await redis_client.script_flush()  # as after a Redis restart or failover
    assert await apply_plan(scripts, plan, 60_000, lsn=2, generation_interval_ms=0) is True
    assert await redis_client.get(fence_key(5)) == b"3"
    assert await redis_client.get(CACHE_MARK) == lsn_hex(2).encode()


async def test_payloads_outside_the_contract_are_quarantined_in_the_batch(
    relay_conn: asyncpg.Connection, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    """Bad payloads among good ones: one batch takes them all; the bad ones are filed with the
    reason (ops/outbox shows them), the good ones applied; the drain never goes one by one."""
    await _insert_events(primary)
    bad = await primary.fetch(
        """INSERT INTO outbox (event_type, aggregate_id, payload)
           VALUES ('product.updated', 5, '{"id": 5}'), ('product.updated', 6, '{"id": "six", "version": 2}'),
                  ('product.updated', 7, '[1, 2]')
           RETURNING id"""
    )
    await _insert_events(primary)
    await redis_client.set(CACHE_MARK, lsn_hex(1))
    outcome = await process_batch(relay_conn, CacheScripts(redis_client), _options("quarantining", batch_size=5_000))

    assert (outcome.processed, outcome.failed, outcome.error) == (2 * EVENTS + 3, 0, None), "one batch, no retries"
    assert await primary.fetchval("SELECT count(*) FROM outbox") == 0
    held = await primary.fetch("SELECT event_id, reason, quarantined_by FROM outbox_quarantine ORDER BY event_id")
    assert [r["event_id"] for r in held] == [r["id"] for r in bad]
    assert {r["quarantined_by"] for r in held} == {"quarantining"}
    assert "version" in held[0]["reason"], held[0]["reason"]
    assert "int" in held[1]["reason"] or "six" in held[1]["reason"], held[1]["reason"]
    assert held[2]["reason"], "every quarantined event says why"
    assert await redis_client.get(fence_key(1)) is not None, "the good events of the batch were applied"

    from app.admin_cli.outbox import outbox_status

    assert (await outbox_status(primary))["quarantined"] == 3

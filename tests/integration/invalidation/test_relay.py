"""The invalidation path: outbox → relay → Redis, through NOTIFY, polling, reconnects and Redis outages."""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.contracts.cache_keys import (
    CACHE_MARK,
    GENERATION_CLOCK_MARGIN_MS,
    fence_key,
    lsn_hex,
    parse_generation,
    product_key,
)
from app.contracts.cache_scripts import CacheScripts
from app.invalidation.relay import OutboxRelay
from app.main import runtime_of
from devtools.stack import free_port
from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.faults import TcpProxy

pytestmark = pytest.mark.integration


async def _wait_until(predicate, within_s: float, step_s: float = 0.001) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``predicate()`` was true; fails after ``within_s``."""
    started = time.perf_counter()
    while True:
        if await predicate():
            return time.perf_counter() - started
        if time.perf_counter() - started > within_s:
            raise AssertionError(f"not true within {within_s}s")
        await asyncio.sleep(step_s)


async def _stale_gone(redis: aioredis.Redis, pid: int) -> bool:
    """The planted ``1|stale`` entry is gone: deleted, or replaced by the refreshed new version."""
    raw = await redis.get(product_key(pid))
    return raw is None or not raw.startswith(b"1|")


async def _pending(primary: asyncpg.Connection) -> int:
    return int(await primary.fetchval("SELECT count(*) FROM outbox_events WHERE processed_at IS NULL"))


def _relay(db: ScratchDatabase, redis: aioredis.Redis, name: str, **overrides: object) -> OutboxRelay:
    """A relay on the test database; ``overrides`` are relay settings (``batch_size=5``)."""
    settings = db.settings(**{f"relay_{key}": value for key, value in overrides.items()})
    return OutboxRelay(name, settings.db.primary_dsn, redis, settings.relay, settings.cache)


async def test_notify_invalidates_at_least_10x_faster_than_the_poll_interval(
    db: ScratchDatabase, admin_headers: dict[str, str], redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    # Polling every 30 s: only the NOTIFY can explain an invalidation within a tenth of that.
    settings = db.settings(relay_enabled=True, relay_poll_interval_s=30.0)
    limit_s = settings.relay.poll_interval_s / 10
    latencies = []
    async with running_app(settings) as (app, client):
        relay = runtime_of(app).relay
        await _wait_until(lambda: _true(relay.connected), 5)
        for i in range(120):
            pid = 1 + i % 50
            await redis_client.set(product_key(pid), b"1|stale")
            started = time.perf_counter()
            response = await client.patch(f"/products/{pid}", json={"price_cents": 100 + i}, headers=admin_headers)
            assert response.status_code == 200

            async def gone(pid: int = pid) -> bool:
                return await _stale_gone(redis_client, pid)

            await _wait_until(gone, within_s=limit_s)
            latencies.append(time.perf_counter() - started)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"\ninvalidation via NOTIFY (write request start → key gone), n={len(latencies)}: "
        f"p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms max={latencies[-1] * 1000:.1f} ms "
        f"(poll interval {settings.relay.poll_interval_s:.0f} s)"
    )
    assert latencies[-1] < limit_s, "every invalidation came from a notification, not a poll"
    assert await _pending(primary) == 0


async def test_killed_listener_connection_reconnects_and_still_invalidates(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection, admin_headers: dict[str, str]
) -> None:
    settings = db.settings(relay_enabled=True, relay_poll_interval_s=0.5)
    async with running_app(settings) as (app, client):
        relay = runtime_of(app).relay
        await _wait_until(lambda: _true(relay.connected), 5)
        first_pid = relay.backend_pid
        killed = await primary.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'catalog.relay' AND datname = current_database()"
        )
        assert killed
        await redis_client.set(product_key(11), b"1|stale")
        response = await client.patch("/products/11", json={"name": "After the kill"}, headers=admin_headers)
        assert response.status_code == 200

        async def gone() -> bool:
            return await _stale_gone(redis_client, 11)

        # Generous: what matters is that it happens at all (a relay that did not reconnect never would).
        took = await _wait_until(gone, within_s=10.0)
        print(f"\ninvalidated {took * 1000:.0f} ms after a write that followed the listener kill")
        assert relay.connections >= 2
        assert relay.backend_pid != first_pid
        new_pid = await primary.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'catalog.relay' AND datname = current_database()"
        )
        assert new_pid == relay.backend_pid
        ready = (await client.get("/readyz")).json()
        assert ready["listener"]["ok"] is True


async def _true(value: object) -> bool:
    return bool(value)


async def test_relay_started_late_sweeps_the_whole_backlog(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection, admin_headers: dict[str, str]
) -> None:
    async with running_app(db.settings(relay_enabled=False)) as (_app, client):
        for pid in range(20, 70):
            await redis_client.set(product_key(pid), b"1|stale")
            assert (await client.patch(f"/products/{pid}", json={"name": f"n{pid}"}, headers=admin_headers)).is_success
    assert await _pending(primary) == 50

    relay = _relay(db, redis_client, "late")
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _wait_until(lambda: _zero(primary), 5, step_s=0.01)
    finally:
        stop.set()
        await task
    assert all([await _stale_gone(redis_client, pid) for pid in range(20, 70)])
    assert relay.processed_total == 50
    processed_by = await primary.fetch("SELECT DISTINCT processed_by FROM outbox_events")
    assert [r["processed_by"] for r in processed_by] == ["late"]


async def _zero(primary: asyncpg.Connection) -> bool:
    return await _pending(primary) == 0


async def test_redis_outage_keeps_events_pending_then_drains(
    db: ScratchDatabase,
    stack,
    redis_client: aioredis.Redis,
    primary: asyncpg.Connection,  # type: ignore[no-untyped-def]
    admin_headers: dict[str, str],
) -> None:
    proxy = TcpProxy(target_port=stack.config.redis_port, listen_port=free_port())
    await proxy.start()
    try:
        settings = db.settings(
            relay_enabled=True,
            relay_poll_interval_s=0.2,
            relay_max_backoff_s=0.5,
            redis_url=f"redis://127.0.0.1:{proxy.port}/1",
        )
        pids = list(range(100, 140))
        for pid in pids:
            await redis_client.set(product_key(pid), b"1|stale")
        async with running_app(settings) as (_app, client):
            await proxy.cut()
            for pid in pids:
                response = await client.patch(f"/products/{pid}", json={"price_cents": 5}, headers=admin_headers)
                assert response.status_code == 200, "writes must not depend on Redis"

            async def all_tried_and_failed() -> bool:
                failed = await primary.fetchval(
                    "SELECT count(*) FROM outbox_events "
                    "WHERE processed_at IS NULL AND attempts >= 1 AND last_error LIKE 'redis:%'"
                )
                return int(failed) == len(pids)

            await _wait_until(all_tried_and_failed, within_s=10.0, step_s=0.02)
            assert await _pending(primary) == len(pids)
            assert all([await redis_client.exists(product_key(pid)) for pid in pids]), "nothing applied yet"

            await proxy.restore()
            took = await _wait_until(lambda: _zero(primary), within_s=10.0, step_s=0.02)
            print(f"\nbacklog of {len(pids)} drained {took:.2f} s after Redis came back")
            assert all([await _stale_gone(redis_client, pid) for pid in pids])
            versions = await primary.fetch("SELECT id, version FROM products WHERE id = ANY($1)", pids)
            for row in versions:
                assert int(await redis_client.get(fence_key(row["id"]))) == row["version"]
    finally:
        await proxy.close()


async def test_duplicate_delivery_leaves_the_same_product_state(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    from app.invalidation.plan import InvalidationPlan, apply_plan

    payloads = [
        {"id": pid, "version": v, "category_id": 1, "old_category_id": 2} for pid in range(1, 30) for v in (2, 3)
    ]
    scripts = CacheScripts(redis_client)

    async def snapshot() -> dict[bytes, bytes | None]:
        keys = sorted(await redis_client.keys("*product*"))
        return {k: await redis_client.get(k) for k in keys}

    for pid in range(1, 30):
        await redis_client.set(product_key(pid), b"1|stale")
    await redis_client.set(CACHE_MARK, lsn_hex(1))

    async def apply(events: list[dict[str, int]]) -> None:
        await apply_plan(scripts, InvalidationPlan.of(events), 60_000, lsn=1000, generation_interval_ms=0)

    await apply(payloads)
    once = await snapshot()
    generation_once = await redis_client.get("gen:category:1")
    await apply(payloads)
    await apply(list(reversed(payloads)))
    assert await snapshot() == once
    assert all(v == b"3" for v in once.values())  # only fences left, at the newest version
    # A repeat of changes the generation already covers moves nothing: no extra list-cache miss.
    assert await redis_client.get("gen:category:1") == generation_once
    assert parse_generation(generation_once, 0)[1] == 1000


async def test_two_relays_racing_never_process_an_event_twice(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    await primary.execute(
        """INSERT INTO outbox (event_type, aggregate_id, payload)
           SELECT 'product.updated', g % 200 + 1,
                  jsonb_build_object('id', g % 200 + 1, 'version', g, 'category_id', 1, 'old_category_id', 1)
           FROM generate_series(1, 3000) AS g"""
    )
    relays = [_relay(db, redis_client, f"r{i}", batch_size=50) for i in (1, 2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        await _wait_until(lambda: _zero(primary), within_s=20, step_s=0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert sum(r.processed_total for r in relays) == 3000
    assert all(r.processed_total > 0 for r in relays), "both relays should have taken work"
    assert await primary.fetchval("SELECT count(*) FROM outbox_events WHERE attempts <> 1") == 0
    once = await primary.fetchrow("SELECT count(*) AS n, count(DISTINCT id) AS distinct_ids FROM outbox_events")
    assert (once["n"], once["distinct_ids"]) == (3000, 3000), "every event filed as processed exactly once"
    by = {
        r["processed_by"]: r["n"]
        for r in await primary.fetch("SELECT processed_by, count(*) AS n FROM outbox_events GROUP BY 1")
    }
    assert by == {"r1": relays[0].processed_total, "r2": relays[1].processed_total}
    for pid in range(1, 201):
        expected = await primary.fetchval(
            "SELECT max((payload->>'version')::int) FROM outbox_events WHERE aggregate_id = $1", pid
        )
        assert int(await redis_client.get(fence_key(pid))) == expected


async def test_fence_refuses_fills_older_than_the_applied_event(redis_client: aioredis.Redis) -> None:
    from app.invalidation.plan import InvalidationPlan, apply_plan

    scripts = CacheScripts(redis_client)
    await apply_plan(
        scripts,
        InvalidationPlan.of([{"id": 9, "version": 5, "category_id": 1, "old_category_id": 1}]),
        60_000,
        lsn=1,
        generation_interval_ms=0,
    )
    assert await scripts.fill_if_newer(9, 4, b'{"v":4}', 60_000) is False
    assert await redis_client.get(product_key(9)) is None
    assert await scripts.fill_if_newer(9, 5, b'{"v":5}', 60_000) is True
    assert await scripts.fill_if_newer(9, 4, b'{"v":4}', 60_000) is False, "never replace a newer entry"
    assert await redis_client.get(product_key(9)) == b'5|{"v":5}'
    await apply_plan(
        scripts,
        InvalidationPlan.of([{"id": 9, "version": 6, "category_id": 1, "old_category_id": 1}]),
        60_000,
        lsn=2,
        generation_interval_ms=0,
    )
    assert await redis_client.get(product_key(9)) is None
    assert await scripts.fill_if_newer(9, 5, b'{"v":5}', 60_000) is False
    assert await scripts.fill_if_newer(9, 6, b'{"v":6}', 60_000) is True


async def test_retention_purges_only_old_processed_events(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    from app.invalidation.retention import purge_processed

    # 48 processed batches of two events, one processed every hour, the newest 30 minutes ago.
    await primary.execute(
        """INSERT INTO outbox_processed (processed_at, processed_by, events, last_event_id, event_ids,
                                         event_types, aggregate_ids, payloads, created_at, attempts)
           SELECT now() - make_interval(hours => g) + interval '30 minutes', 'old', 2, 2 * g,
                  ARRAY[2 * g - 1, 2 * g], ARRAY['product.updated', 'product.updated'], ARRAY[1, 1],
                  ARRAY['{"id": 1, "version": 1}', '{"id": 1, "version": 1}']::jsonb[], ARRAY[now(), now()], ARRAY[1, 1]
           FROM generate_series(1, 48) AS g"""
    )
    await primary.execute(
        """INSERT INTO outbox (event_type, aggregate_id, payload)
           VALUES ('product.updated', 1, '{"id": 1, "version": 2}')"""
    )
    deleted = await purge_processed(primary, older_than_s=24 * 3600, batch_size=5)
    assert deleted == 48  # the batches 24.5 h .. 47.5 h old, several statements' worth
    assert await primary.fetchval("SELECT count(*) FROM outbox_events") == 49
    assert await primary.fetchval("SELECT min(processed_at) > now() - interval '24 hours' FROM outbox_processed")
    assert await _pending(primary) == 1, "pending events are never purged"


async def test_list_generations_are_coalesced_and_a_pending_bump_needs_no_relay(
    redis_client: aioredis.Redis,
) -> None:
    """A relay may die with a bump pending; readers count it as made once due, as the script will."""
    from app.invalidation.plan import InvalidationPlan, apply_plan

    scripts = CacheScripts(redis_client)
    plan = InvalidationPlan.of([{"id": 1, "version": 2, "category_id": 3, "old_category_id": 3}])
    started = time.monotonic()
    for lsn in range(100, 150):  # 50 writes in quick succession
        await apply_plan(scripts, plan, 60_000, lsn=lsn, generation_interval_ms=500)
    elapsed = time.monotonic() - started

    def now_ms() -> int:
        return int(time.time() * 1000)

    raw = await redis_client.get("gen:search")
    counter, lsn_seen = parse_generation(raw, now_ms())
    assert counter <= 1 + int(elapsed / 0.5) + 1, "at most one bump per interval"
    assert lsn_seen == 149, "readers already know the pending LSN: replicas behind it fill nothing"
    # The relay is gone: nobody runs the script again. Once due (+ the clock margin), readers move on.
    await asyncio.sleep(0.5 + GENERATION_CLOCK_MARGIN_MS / 1000 + 0.05)
    assert parse_generation(await redis_client.get("gen:search"), now_ms()) == (counter + 1, 149)
    assert await redis_client.get("gen:search") == raw, "nothing wrote it: the readers' view alone"
    # A later relay's write makes the due bump real first, then adds its own: no generation is skipped
    # or reused, so a list stored under counter + 1 by a reader never hides the new change.
    await apply_plan(scripts, plan, 60_000, lsn=200, generation_interval_ms=500)
    after, after_lsn = parse_generation(await redis_client.get("gen:search"), now_ms())
    assert (after, after_lsn) in {(counter + 2, 200), (counter + 1, 200)}
    if after == counter + 1:  # pending, within its interval: the old reader key must not be fresh
        assert parse_generation(await redis_client.get("gen:search"), now_ms() + 10_000)[0] == counter + 2

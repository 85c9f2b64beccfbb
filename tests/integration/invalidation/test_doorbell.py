"""The doorbell (app/core/doorbell.py): writes commit without NOTIFY and ring it after COMMIT.

A lost doorbell (the writer killed between its COMMIT and the NOTIFY) costs at most the relay's
poll interval, never the event; rings coalesce into few NOTIFYs carrying the highest id; a
doorbell whose connection was killed reconnects at the next ring.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.contracts.cache_keys import product_key
from app.contracts.events import OUTBOX_CHANNEL
from app.core.db import create_write_pool
from app.core.doorbell import Doorbell
from app.invalidation.relay import OutboxRelay
from app.writes.service import ProductWrites
from devtools.stack import PROJECT_DIR
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration

POLL_S = 0.5
# The relay's poll, plus a batch and a Redis round trip on a loaded machine.
POLL_BOUND_S = POLL_S + 0.3

# A writer that commits through the service's own write code, then dies before its doorbell can
# send: SIGKILL right after COMMIT returns, the NOTIFY never goes out.
_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time
    from app.core.db import create_write_pool
    from app.core.doorbell import Doorbell
    from app.core.settings import load_settings
    from app.writes.service import ProductWrites

    async def main() -> None:
        settings = load_settings({}, primary_dsn=sys.argv[1], admin_token="x" * 32, ryw_secret="y" * 32)
        pool = await create_write_pool(settings.db)
        doorbell = Doorbell(settings.db.primary_dsn, "outbox", interval_s=0.002)  # never started
        writes = ProductWrites(pool, doorbell)
        result = await writes.update(int(sys.argv[2]), {"name": "Written, never rung"}, None)
        assert doorbell.highest > 0 and doorbell.notifies == 0
        print(result.product.version, time.time(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def _until_gone(redis: aioredis.Redis, pid: int, within_s: float) -> float:
    started = time.perf_counter()
    while (raw := await redis.get(product_key(pid))) is not None and raw.startswith(b"1|"):
        if time.perf_counter() - started > within_s:
            raise AssertionError(f"product:{pid} still stale after {within_s:.1f} s")
        await asyncio.sleep(0.002)
    return time.perf_counter() - started


def _relay(db: ScratchDatabase, redis: aioredis.Redis) -> OutboxRelay:
    settings = db.settings(relay_poll_interval_s=POLL_S)
    return OutboxRelay("doorbell-test", settings.db.primary_dsn, redis, settings.relay, settings.cache)


async def _pending(primary: asyncpg.Connection) -> int:
    return int(await primary.fetchval("SELECT count(*) FROM outbox"))


async def test_a_writer_killed_between_commit_and_notify_loses_no_event(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    relay = _relay(db, redis_client)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    heard: list[str] = []
    listener = await asyncpg.connect(db.primary_dsn)
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: heard.append(str(args[-1])))
    try:
        while not relay.connected:  # noqa: ASYNC110  (a flag of the relay's, no event to wait on)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the startup sweep is done: what follows is the poll's
        await redis_client.set(product_key(7), b"1|stale")
        env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
        writer = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _KILLED_WRITER, db.settings().db.primary_dsn, "7"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert writer.returncode == -signal.SIGKILL, writer.stderr
        version, committed = int(writer.stdout.split()[0]), float(writer.stdout.split()[1])
        assert await primary.fetchval("SELECT version FROM products WHERE id = 7") == version, "it committed"

        await _until_gone(redis_client, 7, within_s=POLL_BOUND_S + 1.0)
        took = time.time() - committed  # from the writer's COMMIT, by its own clock (the same host's)
        print(f"\nlost doorbell: product:7 gone {took * 1000:.0f} ms after the writer's COMMIT (poll {POLL_S} s)")
        assert took <= POLL_BOUND_S, f"the poll bounds a lost doorbell: {took:.2f} s > {POLL_BOUND_S} s"
        assert heard == [], "no NOTIFY went out: the poll, not a doorbell, found the event"
        deadline = time.monotonic() + 2
        while await _pending(primary) and time.monotonic() < deadline:  # noqa: ASYNC110  (it commits after Redis)
            await asyncio.sleep(0.01)
        assert await _pending(primary) == 0
    finally:
        stop.set()
        await task
        await listener.close()


async def test_rings_coalesce_into_few_notifies_carrying_the_highest_id(
    db: ScratchDatabase, redis_client: aioredis.Redis, primary: asyncpg.Connection
) -> None:
    settings = db.settings()
    pool = await create_write_pool(settings.db)
    doorbell = Doorbell(settings.db.primary_dsn, OUTBOX_CHANNEL, interval_s=0.02)
    heard: list[int] = []
    listener = await asyncpg.connect(db.primary_dsn)
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: heard.append(int(args[-1])))
    stop = asyncio.Event()
    ringer = asyncio.create_task(doorbell.run(stop))
    writes = ProductWrites(pool, doorbell)
    try:
        writers = asyncio.Semaphore(5)  # the pool's size: writers queue on it, not past it

        async def write(i: int) -> object:
            async with writers:
                return await writes.update(1 + i % 40, {"price_cents": 500 + i}, None)

        results = await asyncio.gather(*(write(i) for i in range(200)))
        highest = int(await primary.fetchval("SELECT max(id) FROM outbox"))
        deadline = time.monotonic() + 5
        while (not heard or heard[-1] < highest) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await ringer
        await listener.close()
        await pool.close()
    assert len(results) == 200
    assert heard[-1] == highest == doorbell.sent, "the last NOTIFY carries the highest id rung"
    assert heard == sorted(heard)
    assert len(heard) < 200 / 4, f"{len(heard)} NOTIFYs for 200 writes: rings coalesce"


async def test_a_doorbell_whose_connection_was_killed_rings_again(
    db: ScratchDatabase, primary: asyncpg.Connection
) -> None:
    settings = db.settings()
    doorbell = Doorbell(settings.db.primary_dsn, OUTBOX_CHANNEL, interval_s=0.0, server_settings={
        "application_name": "catalog.doorbell"})  # fmt: skip
    heard: list[int] = []
    listener = await asyncpg.connect(db.primary_dsn)
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: heard.append(int(args[-1])))
    stop = asyncio.Event()
    ringer = asyncio.create_task(doorbell.run(stop))

    async def heard_id(outbox_id: int) -> None:
        deadline = time.monotonic() + 10
        while outbox_id not in heard:
            assert time.monotonic() < deadline, f"never heard {outbox_id}: {heard}"
            if doorbell.last_error is not None:
                doorbell.ring(outbox_id)  # the next write's ring retries
            await asyncio.sleep(0.02)

    try:
        doorbell.ring(1)
        await heard_id(1)
        killed = await primary.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'catalog.doorbell' AND datname = current_database()"
        )
        assert killed == 1
        await asyncio.sleep(0.1)
        doorbell.ring(2)
        await heard_id(2)
    finally:
        stop.set()
        await ringer
        await listener.close()

"""A Redis Cluster stack (``ops/dev up --redis-cluster``): a master killed under load is failed over
to its replica; reads keep answering meanwhile (the breaker sends them around Redis), no
invalidation is lost and, once writes stop and the outbox drained, no cached product is stale.

The stack is this module's own (the launcher on free ports, three masters with a replica each,
``cluster-node-timeout`` 1.5 s).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from app.contracts.cache_keys import fence_key
from app.core.redis import create_redis
from app.core.settings import RedisSettings
from devtools.drill.checks import quiesce, stale_products
from devtools.stack import Stack
from tests.fixtures.stack import own_stack

pytestmark = pytest.mark.system
PRODUCTS = range(1, 61)
LOAD_BEFORE_S = 2.0
LOAD_AFTER_S = 6.0


@pytest.fixture(scope="module")
def clustered() -> Iterator[Stack]:
    with own_stack(instances=2, redis_cluster=True) as stack:
        yield stack


async def _master_node_of(stack: Stack, key: str) -> str:
    client = create_redis(RedisSettings(url=stack.config.redis_url, cluster=True, socket_timeout_ms=2000))
    try:
        await client.initialize()  # type: ignore[union-attr]
        node = client.get_node_from_key(key)  # type: ignore[union-attr]
        port = int(node.port)
    finally:
        await client.aclose()
    return next(n for n in stack.config.redis_nodes if stack.config.port_of(n) == port)


async def test_a_master_killed_under_load_loses_no_invalidation(clustered: Stack) -> None:
    config = clustered.config
    admin = {"Authorization": f"Bearer {config.admin_token}"}
    stop = asyncio.Event()
    reads: list[int] = []
    writes: list[int] = []
    written: set[int] = set()
    rng = random.Random(14)

    async def read_loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                response = await client.get(f"/products/{rng.choice(PRODUCTS)}")
                reads.append(response.status_code)
            except httpx.HTTPError:
                reads.append(0)

    async def write_loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            product_id = rng.choice(PRODUCTS)
            try:
                response = await client.patch(
                    f"/products/{product_id}", json={"price_cents": rng.randint(100, 99_999)}, headers=admin
                )
                writes.append(response.status_code)
                if response.status_code == 200:
                    written.add(product_id)
            except httpx.HTTPError:
                writes.append(0)
            await asyncio.sleep(0.05)

    # The product's master: its fence, its cached entry and a third of the marks live there.
    victim = await _master_node_of(clustered, fence_key(PRODUCTS[0]))
    async with httpx.AsyncClient(base_url=config.url, timeout=5) as client:
        for product_id in PRODUCTS:  # warm: every product cached
            assert (await client.get(f"/products/{product_id}")).status_code == 200
        load = [asyncio.create_task(read_loop(client)) for _ in range(3)]
        load.append(asyncio.create_task(write_loop(client)))
        await asyncio.sleep(LOAD_BEFORE_S)
        pid = clustered.layout.pid(victim)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.sleep(LOAD_AFTER_S)
        stop.set()
        await asyncio.gather(*load)
        failed_reads = len([s for s in reads if s != 200])
        assert failed_reads == 0, f"{failed_reads} of {len(reads)} reads failed while {victim} was failed over"
        assert writes.count(200) > 20, writes
        assert time.monotonic() - killed_at >= LOAD_AFTER_S

    unsettled = await quiesce(config.superuser_dsn(config.primary_port), config.superuser_dsn(config.replica_port), 15)
    assert unsettled == [], _relay_log(clustered) + "\n" + _cluster_nodes(clustered, victim)
    assert "cluster_state:ok" in _cluster_nodes(clustered, victim), "the victim's replica took over"
    stale = await stale_products(
        config.app_urls,
        config.superuser_dsn(config.primary_port),
        config.redis_url,
        written | set(PRODUCTS),
        redis_cluster=True,
    )
    assert stale.stale == 0, stale.examples
    assert stale.unreadable == 0
    assert stale.checked == len(PRODUCTS)


def _relay_log(stack: Stack) -> str:
    """The relays' last words, for a failure message."""
    lines = [
        line[:400]
        for log in sorted(stack.logs_dir.glob("app-*.log"))
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if '"relay.' in line
    ]
    return "\n".join(lines[-12:])


def _cluster_nodes(stack: Stack, dead: str) -> str:
    alive = next(n for n in stack.config.redis_nodes if n != dead)
    return stack.redis.cluster_info(stack.config.port_of(alive)) + stack.host.run(
        ["redis-cli", "-p", str(stack.config.port_of(alive)), "cluster", "nodes"], check=False
    ).stdout

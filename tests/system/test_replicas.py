"""Two replicas (``ops/dev up --replicas 2``): display reads spread over both, leave one that lags
or stops for the other, and a writer still reads their write.

The stack is this module's own (the launcher on free ports, one instance: the replicas are the
point, and one instance's metrics tell which replica served each read). Every read is an uncached
search (a new query each time), so it reaches a replica and ``catalog_replica_reads_total`` says
which one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from itertools import count

import httpx
import pytest

from app.admin_cli.hotpath import scrape
from devtools.stack import Stack
from tests.fixtures.stack import own_stack, replay_paused

pytestmark = pytest.mark.system
REPLICAS = ("replica-1", "replica-2")
_queries = count()


@pytest.fixture(scope="module")
def replicated() -> Iterator[Stack]:
    with own_stack(replicas=2, instances=1) as stack:
        yield stack


async def _until(condition: Callable[[], Awaitable[bool]], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


async def _eligible(client: httpx.AsyncClient) -> dict[str, bool]:
    ready = (await client.get("/readyz")).json()
    return {name: check["eligible"] for name, check in ready["replicas"].items()}


async def _eligible_are(client: httpx.AsyncClient, expected: dict[str, bool]) -> None:
    async def reached() -> bool:
        return await _eligible(client) == expected

    await _until(reached)


async def _replica_reads(stack: Stack) -> dict[str, float]:
    samples = await scrape(stack.config.app_urls)
    return {name: samples.get(("catalog_replica_reads_total", (("replica", name),)), 0.0) for name in REPLICAS}


async def _uncached_reads(stack: Stack, client: httpx.AsyncClient, reads: int = 8) -> dict[str, float]:
    """``reads`` display reads that miss every cache; how many each replica answered."""
    before = await _replica_reads(stack)
    for _ in range(reads):
        response = await client.get("/search/products", params={"q": f"spread{next(_queries)}"})
        assert response.status_code == 200
        assert response.headers["x-read-source"] in {"replica", "primary"}
    after = await _replica_reads(stack)
    return {name: after[name] - before[name] for name in REPLICAS}


async def test_reads_spread_over_both_replicas_and_leave_a_lagging_one(replicated: Stack) -> None:
    admin = {"Authorization": f"Bearer {replicated.config.admin_token}"}
    async with (
        httpx.AsyncClient(base_url=replicated.config.url, timeout=5) as reader,
        httpx.AsyncClient(base_url=replicated.config.url, timeout=5) as writer,
    ):
        await _eligible_are(reader, {"replica-1": True, "replica-2": True})
        spread = await _uncached_reads(replicated, reader)
        assert spread["replica-1"] > 0
        assert spread["replica-2"] > 0

        async with replay_paused(replicated, "replica-2"):
            written = await writer.patch("/products/7", json={"name": "written while replica-2 lags"}, headers=admin)
            assert written.status_code == 200, written.text
            version = written.json()["version"]
            # replica-2 now holds WAL it has not replayed; past the lag bound (1 s) it leaves the rotation.
            await _eligible_are(reader, {"replica-1": True, "replica-2": False})
            moved = await _uncached_reads(replicated, reader)
            assert moved == {"replica-1": 8, "replica-2": 0}

            # The writer reads their write: from the cache the relay refilled, or from a replica that
            # covers their token (replica-1 once it replayed it), or the primary; never replica-2.
            mine = await writer.get("/products/7")
            assert mine.status_code == 200
            assert (mine.json()["version"], mine.json()["name"]) == (version, "written while replica-2 lags")
            assert (await _uncached_reads(replicated, writer, reads=4))["replica-2"] == 0

        await _eligible_are(reader, {"replica-1": True, "replica-2": True})


async def test_a_stopped_replica_leaves_its_reads_to_the_other(replicated: Stack) -> None:
    async with httpx.AsyncClient(base_url=replicated.config.url, timeout=5) as client:
        await _eligible_are(client, {"replica-1": True, "replica-2": True})
        replicated.stop("replica-1")
        try:
            await _eligible_are(client, {"replica-1": False, "replica-2": True})
            assert (await client.get("/readyz")).json()["status"] == "degraded"
            assert await _uncached_reads(replicated, client) == {"replica-1": 0, "replica-2": 8}
        finally:
            replicated.start("replica-1")
        await _eligible_are(client, {"replica-1": True, "replica-2": True})

        async def both_serve_again() -> bool:
            # The first read on replica-1's pool may still meet a connection from before the restart:
            # the primary answers it and replica-1 sits out a second, then takes its share again.
            spread = await _uncached_reads(replicated, client, reads=4)
            return spread["replica-1"] > 0 and spread["replica-2"] > 0

        await _until(both_serve_again)

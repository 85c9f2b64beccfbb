"""The primary unreachable: degraded, not down.

The app reaches the primary through a TCP proxy the test can cut, so only this app loses it: the
replica keeps streaming from the real primary. Display reads keep answering from the replica
(marked degraded); a writer's read that the replica cannot prove fresh is refused with 503,
never answered with an older row; writes, checkout and orders answer 503 with Retry-After within
a bounded time; when the primary is back, writes succeed again by themselves.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.checkout.tokens import OrderTokens
from devtools.stack import Stack, free_port
from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.faults import TcpProxy
from tests.fixtures.stack import replay_paused, wait_for_replica

pytestmark = pytest.mark.integration
# Every refused request must come back well within this: connect and acquire deadlines are ~1-2 s.
BOUND_S = 4.0


async def _timed(request) -> tuple[httpx.Response, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "unavailable"


async def test_with_the_primary_unreachable_reads_go_on_and_writes_are_refused(
    stack: Stack, db: ScratchDatabase, admin_headers: dict[str, str]
) -> None:
    proxy = TcpProxy(target_port=stack.config.primary_port, listen_port=free_port())
    await proxy.start()
    settings = db.settings(primary_dsn=stack.config.app_dsn(proxy.port, db.name), replica_max_lag_ms=20_000)
    try:
        async with running_app(settings) as (app, client):
            anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://catalog.test")
            async with replay_paused(stack):
                written = await client.patch("/products/9", json={"name": "Newer"}, headers=admin_headers)
                assert written.status_code == 200
                await proxy.cut()

                # The writer's own product: the paused replica cannot show their write.
                response, took = await _timed(client.get("/products/9"))
                _refused(response)
                assert took < BOUND_S

                # Everyone else reads on, from the replica, told it is degraded.
                for path in ("/products/9", "/products/123", "/search/products?q=lamp", "/categories/3/products"):
                    response, took = await _timed(anonymous.get(path))
                    assert response.status_code == 200, (path, response.text)
                    assert response.headers["x-read-source"] in {"replica", "cache"}, path
                    assert took < BOUND_S, path
                # Within a monitor sample (~100 ms) reads say they are degraded.
                deadline = time.monotonic() + 2
                product = 124
                while "x-degraded" not in (uncached := await anonymous.get(f"/products/{product}")).headers:
                    assert time.monotonic() < deadline, "reads never said they were degraded"
                    product += 1
                    await asyncio.sleep(0.05)
                assert (uncached.headers["x-read-source"], uncached.headers["x-degraded"]) == (
                    "replica",
                    "primary-unreachable",
                )

                # Writes, checkout and orders: 503 problem+json with Retry-After, quickly.
                for method, path, body in (
                    ("PATCH", "/products/10", {"name": "x"}),
                    ("POST", "/products/10/inventory", {"delta": 1}),
                    ("POST", "/checkout", {"items": [{"product_id": 1, "quantity": 1, "expected_price_cents": 1}]}),
                    ("GET", "/orders/1", None),
                ):
                    headers = {**admin_headers, "X-Order-Token": OrderTokens(settings.ryw.secret).issue(1)}
                    response, took = await _timed(client.request(method, path, json=body, headers=headers))
                    _refused(response)
                    assert took < BOUND_S, path

                ready = await client.get("/readyz")
                assert ready.status_code == 200, "a degraded instance still serves: keep it in rotation"
                assert (ready.json()["status"], ready.json()["degraded"]) == ("degraded", True)
                assert ready.json()["primary"]["ok"] is False

            # Replay resumes: the replica now has the writer's version, so it may serve them.
            await wait_for_replica(stack)
            await asyncio.sleep(0.3)  # the monitor's next sample of the replica
            mine = await client.get("/products/9")
            assert mine.status_code == 200
            assert mine.json()["version"] == written.json()["version"]

            await proxy.restore()
            started = time.perf_counter()
            while True:
                response = await client.patch("/products/10", json={"name": "back"}, headers=admin_headers)
                if response.status_code == 200:
                    break
                _refused(response)
                assert time.perf_counter() - started < 3.0, "writes must recover by themselves within 3 s"
                await asyncio.sleep(0.1)
            print(f"\nfirst write succeeded {time.perf_counter() - started:.2f} s after the primary came back")
            await anonymous.aclose()
    finally:
        await proxy.close()

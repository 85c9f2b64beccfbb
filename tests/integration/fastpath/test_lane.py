"""The fast lane answers a near-cache hit exactly as the full path would, and only then.

Each case sends the same request (same ``X-Request-ID``) once with the lane on and once with it
off, through the app's raw ASGI interface, and compares what reaches the server: status, every
header in order, body. ``answered`` shows which side actually answered, so these tests fail if
the lane stops answering as surely as if it answers wrongly.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from litestar import Litestar
from prometheus_client import REGISTRY

from app.contracts.ryw import RywCookies
from app.fastpath.lane import FastLane
from app.main import runtime_of
from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration

Exchange = tuple[int, list[tuple[bytes, bytes]], bytes]


async def _raw(app: Litestar, path: str, headers: list[tuple[bytes, bytes]], method: str = "GET") -> Exchange:
    raw_path, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"catalog.test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], list(start["headers"]), body


def _lane(app: Litestar) -> FastLane:
    lane = app.asgi_handler
    assert isinstance(lane, FastLane), "the composition root installs the lane"
    return lane


async def _near_holds(app: Litestar, client: httpx.AsyncClient, product_id: int) -> int:
    """Read the product until this instance's near cache holds it; its version."""
    near = runtime_of(app).near_cache
    assert near is not None
    deadline = time.monotonic() + 5
    while (entry := near.get(product_id)) is None:
        assert time.monotonic() < deadline, "the near cache never took the product"
        assert (await client.get(f"/products/{product_id}")).status_code == 200
        await asyncio.sleep(0.01)
    return entry.version


async def _both(app: Litestar, path: str, headers: list[tuple[bytes, bytes]], method: str = "GET") -> tuple[
    Exchange, Exchange, int
]:
    """The exchange with the lane on, with it off, and how many of the two the lane answered."""
    lane = _lane(app)
    before = lane.answered
    with_lane = await _raw(app, path, headers, method)
    lane.enabled = False
    try:
        without = await _raw(app, path, headers, method)
    finally:
        lane.enabled = True
    return with_lane, without, lane.answered - before


@pytest.mark.parametrize("debug_headers", [False, True], ids=["production-headers", "debug-headers"])
async def test_a_near_hit_is_the_full_paths_answer_byte_for_byte(db: ScratchDatabase, debug_headers: bool) -> None:
    settings = db.settings(relay_enabled=True, debug_headers=debug_headers, near_cache_ttl_s=60)
    async with running_app(settings) as (app, client):
        version = await _near_holds(app, client, 7)
        cases = [
            [(b"x-request-id", b"req-1")],
            [(b"x-request-id", b"req-2"), (b"if-none-match", f'"{version}"'.encode())],
            [(b"x-request-id", b"req-3"), (b"if-none-match", f'W/"{version}"'.encode())],
            [(b"x-request-id", b"req-4"), (b"if-none-match", b"*")],
            [(b"x-request-id", b"req-5"), (b"if-none-match", f'"{version + 1}", "0"'.encode())],
            [(b"x-request-id", b"req-6"), (b"cookie", b"theme=dark; session=abc")],  # other cookies: still a hit
        ]
        for headers in cases:
            with_lane, without, answered = await _both(app, "/products/7", headers)
            assert answered == 1, headers
            assert with_lane == without, headers
        statuses = [(await _raw(app, "/products/7", h))[0] for h in cases]
        assert statuses == [200, 304, 304, 304, 200, 200]


async def test_requests_the_lane_leaves_to_the_full_path(db: ScratchDatabase) -> None:
    settings = db.settings(relay_enabled=True, debug_headers=True, near_cache_ttl_s=60)
    async with running_app(settings) as (app, client):
        await _near_holds(app, client, 7)
        rid = [(b"x-request-id", b"req")]
        for path, method in [
            ("/products/7?utm=1", "GET"),  # a query string
            ("/products/007", "GET"),  # not the canonical id
            ("/products/7/", "GET"),
            ("/products/0", "GET"),
            ("/products/99999999999999999999", "GET"),  # past the id range: the full path says 400
            ("/products/7", "HEAD"),
            ("/products/7", "DELETE"),
        ]:
            with_lane, without, answered = await _both(app, path, rid, method)
            assert answered == 0, path
            assert with_lane[0] == without[0], path


async def test_a_writer_with_a_token_reads_through_the_full_path(db: ScratchDatabase) -> None:
    """A read-your-writes token may name a newer version than the near entry: the lane must not
    answer it. Here the token names a version the cache cannot have yet (the writer's own write,
    not yet replicated or invalidated): the full path goes to the primary for it."""
    settings = db.settings(relay_enabled=True, debug_headers=True, near_cache_ttl_s=60)
    async with running_app(settings) as (app, client):
        version = await _near_holds(app, client, 7)
        cookies = RywCookies(settings.ryw)
        token = cookies.codec.after_write(None, 1, [(7, version + 1)])
        cookie = f"{cookies.name}={cookies.codec.encode(token)}".encode()
        lane = _lane(app)
        before = lane.answered
        status, headers, _body = await _raw(app, "/products/7", [(b"cookie", b"a=b; " + cookie)])
        assert lane.answered == before
        assert status == 200
        assert (b"x-read-source", b"primary") in headers
        assert (b"cache-control", b"private, no-cache") in headers


async def test_the_lane_counts_what_the_full_path_counts(db: ScratchDatabase) -> None:
    settings = db.settings(relay_enabled=True, near_cache_ttl_s=60)
    async with running_app(settings) as (app, client):
        version = await _near_holds(app, client, 9)
        labels = {"method": "GET", "path": "/products/{product_id}", "app_name": "catalog"}

        def requests(status: str) -> float:
            return REGISTRY.get_sample_value("litestar_requests_total", {**labels, "status_code": status}) or 0.0

        def near_hits() -> float:
            found = REGISTRY.get_sample_value(
                "catalog_read_source_total", {"route": "product.get", "source": "cache", "reason": "near"}
            )
            return found or 0.0

        lane = _lane(app)
        ok, not_modified, hits, answered = requests("200"), requests("304"), near_hits(), lane.answered
        await _raw(app, "/products/9", [])
        await _raw(app, "/products/9", [(b"if-none-match", f'"{version}"'.encode())])
        assert lane.answered == answered + 2
        assert requests("200") == ok + 1
        assert requests("304") == not_modified + 1
        assert near_hits() == hits + 2


async def test_made_request_ids_are_unique(db: ScratchDatabase) -> None:
    async with running_app(db.settings(relay_enabled=True, near_cache_ttl_s=60)) as (app, client):
        await _near_holds(app, client, 7)
        ids = set()
        for _ in range(50):
            _status, headers, _body = await _raw(app, "/products/7", [])
            ids.add(dict(headers)[b"x-request-id"])
        assert len(ids) == 50

"""The whole stack through nginx: two app instances, a real replica, fault drills."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import httpx
import pytest

from app.core.settings import NearCacheSettings
from devtools.stack import Stack
from tests.fixtures.stack import stack_redis

pytestmark = pytest.mark.system
NEAR_CACHE_TTL_S = NearCacheSettings().ttl_s


@pytest.fixture
def admin(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.config.admin_token}"}


@pytest.fixture
def cold_cache(stack: Stack) -> None:
    """Nothing cached anywhere (other system tests, like the drill, warm the whole catalog)."""
    client = stack_redis(stack)
    try:
        client.flushdb()
    finally:
        client.close()
    time.sleep(NEAR_CACHE_TTL_S + 0.1)  # the instances' near caches let their entries expire


@pytest.mark.usefixtures("cold_cache")
def test_nginx_balances_across_both_instances(stack: Stack) -> None:
    seen = set()
    with httpx.Client(base_url=stack.config.url, timeout=5) as client:
        for i in range(20):
            response = client.get(f"/products/{100 + i}")  # uncached: served by the replica
            assert response.status_code == 200
            assert response.headers["x-read-source"] == "replica"
            assert response.headers["x-request-id"]
            seen.add(response.headers["x-instance"])
    assert seen == {"app-1", "app-2"}


def test_request_id_is_propagated(stack: Stack) -> None:
    response = httpx.get(f"{stack.config.url}/healthz", headers={"X-Request-ID": "drill-42"})
    assert response.headers["x-request-id"] == "drill-42"


def test_write_through_nginx_sets_cookie_and_one_outbox_row(stack: Stack, admin: dict[str, str]) -> None:
    async def outbox_rows(product_id: int) -> list[dict[str, object]]:
        conn = await asyncpg.connect(stack.config.superuser_dsn(stack.config.primary_port))
        try:
            rows = await conn.fetch("SELECT payload FROM outbox_events WHERE aggregate_id = $1", product_id)
        finally:
            await conn.close()
        return [json.loads(r["payload"]) for r in rows]

    before = asyncio.run(outbox_rows(10))
    with httpx.Client(base_url=stack.config.url, timeout=5) as client:
        response = client.patch("/products/10", json={"price_cents": 777}, headers=admin)
        assert response.status_code == 200, response.text
        version = response.json()["version"]
        assert "catalog_ryw" in response.cookies
    after = asyncio.run(outbox_rows(10))
    new = [p for p in after if p not in before]
    assert len(new) == 1
    assert new[0]["id"] == 10
    assert new[0]["version"] == version


@pytest.mark.usefixtures("cold_cache")
def test_replica_stopped_reads_fall_back_to_primary_then_return(stack: Stack) -> None:
    for replica in stack.config.replicas:  # every one: with several, the others would serve
        stack.stop(replica)
    try:
        with httpx.Client(base_url=stack.config.url, timeout=5) as client:
            for pid in range(150, 156):  # uncached products
                response = client.get(f"/products/{pid}")
                assert response.status_code == 200
                assert response.headers["x-read-source"] == "primary"
            ready = client.get("/readyz").json()
            assert ready["status"] == "degraded"
    finally:
        for replica in stack.config.replicas:
            stack.start(replica)
    with httpx.Client(base_url=stack.config.url, timeout=5) as client:
        deadline = time.monotonic() + 15
        sources: set[str] = set()
        pid = 160
        while time.monotonic() < deadline and sources != {"replica"}:
            sources = {client.get(f"/products/{pid + i}").headers["x-read-source"] for i in range(4)}
            pid += 4
            time.sleep(0.2)
        assert sources == {"replica"}


def test_up_again_changes_nothing(stack: Stack) -> None:
    before = stack.status()
    env_before = (stack.run_dir / "stack.env").read_text()
    stack.up()
    assert stack.status() == before
    assert (stack.run_dir / "stack.env").read_text() == env_before


def _outbox_status(stack: Stack) -> dict[str, object]:
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.admin_cli.outbox",
            "--dsn",
            stack.config.superuser_dsn(stack.config.primary_port),
            "status",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_write_through_nginx_invalidates_the_cached_product(stack: Stack, admin: dict[str, str]) -> None:
    from app.core.settings import RelaySettings

    poll_s = RelaySettings().poll_interval_s  # the stack's instances run the default
    r = stack_redis(stack)
    took: list[float] = []
    try:
        with httpx.Client(base_url=stack.config.url, timeout=5) as client:
            for i in range(10):
                r.set("product:12", b"1|stale")
                started = time.monotonic()
                response = client.patch("/products/12", json={"name": f"Fresh name {i}"}, headers=admin)
                assert response.status_code == 200
                # Gone, or replaced by the new version (the relay's refresh): no longer the stale entry.
                while (r.get("product:12") or b"").startswith(b"1|"):
                    assert time.monotonic() - started < 10 * poll_s, "the relays in the app instances never replaced it"
                    time.sleep(0.001)
                took.append(time.monotonic() - started)
    finally:
        r.close()
    # Polling alone, each write right after an invalidation waits for one of the two instances'
    # next poll: over back-to-back writes that averages half the poll interval. A NOTIFY wakes a
    # relay at once.
    print(f"\ninvalidation through nginx, ms: {[round(t * 1000) for t in took]}")
    assert sum(took) / len(took) < poll_s / 4, took
    status = _outbox_status(stack)
    assert status["pending"] == 0
    assert set(status) >= {"pending", "oldest_pending_age_seconds", "failing", "processed_last_minute"}


def test_redis_down_writes_still_commit_and_the_backlog_drains(stack: Stack, admin: dict[str, str]) -> None:
    for node in stack.config.redis_nodes:  # one Redis, or every node of the cluster
        stack.stop(node)
    try:
        with httpx.Client(base_url=stack.config.url, timeout=5) as client:
            for pid in range(30, 60):
                assert client.patch(f"/products/{pid}", json={"price_cents": 42}, headers=admin).status_code == 200
            assert client.get("/products/30").status_code == 200, "reads survive Redis being down"
        deadline = time.monotonic() + 15  # the relays back off while Redis fails; each event is tried once soon
        while (status := _outbox_status(stack))["failing"] != 30:
            assert time.monotonic() < deadline, f"not every event was tried against Redis: {status}"
            time.sleep(0.2)
        assert status["pending"] == 30
        assert all("redis" in e["last_error"] for e in status["failing_events"])  # type: ignore[attr-defined]
    finally:
        for node in stack.config.redis_nodes:
            stack.start(node)
    deadline = time.monotonic() + 10
    while _outbox_status(stack)["pending"] != 0:
        assert time.monotonic() < deadline, "backlog did not drain after Redis came back"
        time.sleep(0.2)

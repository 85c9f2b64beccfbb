"""The display read path (first cut): replica first, primary when the replica is unusable."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from app.core.settings import Settings
from app.main import create_app
from tests.fixtures.app import AppLifespan
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.stack import wait_for_replica

pytestmark = pytest.mark.integration


async def test_product_read_comes_from_the_replica(client: httpx.AsyncClient) -> None:
    response = await client.get("/products/1")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "sku",
        "name",
        "description",
        "category_id",
        "price_cents",
        "currency",
        "inventory",
        "version",
        "updated_at",
    }
    assert response.headers["etag"] == f'"{body["version"]}"'
    assert response.headers["x-read-source"] == "replica"
    assert response.headers["content-type"] == "application/json"


async def test_archived_product_is_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: ScratchDatabase
) -> None:
    assert (await client.delete("/products/7", headers=admin_headers)).status_code == 200
    await wait_for_replica(db.stack)
    response = await client.get("/products/7")
    assert response.status_code == 404
    assert response.json()["code"] == "product_not_found"


async def _client_for(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://catalog.test")


async def test_unreachable_replica_falls_back_to_the_primary(db: ScratchDatabase) -> None:
    # A replica DSN nothing listens on: every read still answers, from the primary.
    settings: Settings = db.settings(replica_dsns=("postgresql://catalog_app@127.0.0.1:1/nowhere",))
    app = create_app(settings)
    lifespan = AppLifespan(app)
    await lifespan.start()
    try:
        async with await _client_for(app) as client:
            for pid in (1, 2, 3):
                response = await client.get(f"/products/{pid}")
                assert response.status_code == 200
                assert response.headers["x-read-source"] == "primary"
            ready = (await client.get("/readyz")).json()
            assert ready["status"] == "degraded"
            assert ready["replicas"]["replica-1"]["ok"] is False
            assert ready["replicas"]["replica-1"]["eligible"] is False
    finally:
        await lifespan.stop()


async def test_no_replica_configured_reads_the_primary(db: ScratchDatabase) -> None:
    app = create_app(db.settings(replica_dsns=()))
    lifespan = AppLifespan(app)
    await lifespan.start()
    try:
        async with await _client_for(app) as client:
            response = await client.get("/products/1")
            assert response.status_code == 200
            assert response.headers["x-read-source"] == "primary"
            assert response.headers["x-cache"] == "miss"
            again = await client.get("/products/1")
            assert again.headers["x-read-source"] == "cache"
            assert again.content == response.content
    finally:
        await lifespan.stop()


async def test_readyz_reports_primary_replica_lag_and_redis(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["primary"]["ok"] is True
    replica = body["replicas"]["replica-1"]
    assert replica["ok"] is True
    assert replica["eligible"] is True
    assert replica["lag_bytes"] >= 0
    assert replica["lag_ms"] >= 0
    assert body["redis"]["ok"] is True


async def test_readyz_reports_redis_down_without_failing(db: ScratchDatabase) -> None:
    app = create_app(db.settings(redis_url="redis://127.0.0.1:1/0"))
    lifespan = AppLifespan(app)
    await lifespan.start()
    try:
        async with await _client_for(app) as client:
            response = await client.get("/readyz")
            assert response.status_code == 200
            assert response.json()["status"] == "degraded"
            assert response.json()["redis"]["ok"] is False
            assert (await client.get("/products/1")).status_code == 200
    finally:
        await lifespan.stop()


async def test_healthz_openapi_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/products/{product_id}" in schema["paths"]
    assert "fast path" in schema["paths"]["/products/{product_id}"]["get"]["description"]
    await client.get("/products/1")
    metrics = (await client.get("/metrics")).text
    assert "catalog_read_source_total" in metrics

"""nginx's own limits and errors: each one answers RFC 9457 problem+json in the app's shape.

The limits are set in ops/nginx/catalog.conf.template: the body limit (the app's, 64k), the
request line and each header at most 8k, admin writes 50 r/s per client with a burst of 100, and
502/504 when no instance answers. The app's own errors pass through nginx untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import httpx
import pytest

from devtools.stack import Stack

pytestmark = pytest.mark.system

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "instance"}
# ops/devtools/stack/nginx.py: CATALOG_WRITE_RATE 50r/s, CATALOG_WRITE_BURST 100.
WRITE_RATE_PER_S = 50
WRITE_BURST = 100
RATE_LIMITED_PRODUCT = 177  # no other system test writes it; the drill may, relatively


@pytest.fixture
def admin(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.config.admin_token}"}


def assert_nginx_problem(
    response: httpx.Response, status: int, code: str, instance: str, *, retry_after: bool = False
) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) == PROBLEM_MEMBERS, problem
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == f"/problems/{code.replace('_', '-')}"
    assert problem["title"]
    assert problem["detail"]
    assert problem["instance"] == instance
    if retry_after:
        assert response.headers["retry-after"] == "1"
    else:
        assert "retry-after" not in response.headers
    return problem  # type: ignore[no-any-return]


def test_body_over_the_limit_is_413(stack: Stack, admin: dict[str, str]) -> None:
    body = {"description": "x" * 70_000}  # the limit is the app's 64 KiB
    response = httpx.patch(f"{stack.config.url}/products/1", json=body, headers=admin, timeout=5)
    problem = assert_nginx_problem(response, 413, "request_entity_too_large", "/products/1")
    assert "64k" in str(problem["detail"])


def test_request_line_over_8k_is_414(stack: Stack) -> None:
    response = httpx.get(f"{stack.config.url}/search/products", params={"q": "a" * 10_000}, timeout=5)
    assert_nginx_problem(response, 414, "uri_too_long", "/search/products")


def test_header_or_cookie_over_8k_is_400(stack: Stack) -> None:
    response = httpx.get(f"{stack.config.url}/products/1", headers={"Cookie": "junk=" + "c" * 20_000}, timeout=5)
    problem = assert_nginx_problem(response, 400, "request_header_too_large", "/products/1")
    assert problem["title"] == "Request Header Or Cookie Too Large"


def test_the_apps_own_errors_pass_through(stack: Stack) -> None:
    response = httpx.get(f"{stack.config.url}/products/99999999", timeout=5)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "product_not_found"
    assert response.headers["x-request-id"]  # echoed by the app; nginx's own pages do not set it


async def test_write_burst_is_429_with_retry_after(stack: Stack, admin: dict[str, str]) -> None:
    path = f"/products/{RATE_LIMITED_PRODUCT}/inventory"

    async def inventory() -> int:
        conn = await asyncpg.connect(stack.config.superuser_dsn(stack.config.primary_port))
        try:
            return int(await conn.fetchval("SELECT inventory FROM products WHERE id = $1", RATE_LIMITED_PRODUCT))
        finally:
            await conn.close()

    before = await inventory()
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=stack.config.url, timeout=10, limits=limits, headers=admin) as client:
        responses = await asyncio.gather(*(client.post(path, json={"delta": 1}) for _ in range(300)))
        statuses = Counter(r.status_code for r in responses)
        print(f"\n300 parallel writes through nginx: {dict(statuses)}")
        assert set(statuses) <= {200, 429}, statuses
        assert statuses[429] > 0, statuses
        assert statuses[200] >= WRITE_BURST, statuses
        limited = next(r for r in responses if r.status_code == 429)
        assert_nginx_problem(limited, 429, "too_many_requests", path, retry_after=True)

        # Give back what got through, as a client told to retry would.
        for _ in range(10):
            restore = await client.post(path, json={"delta": -statuses[200]})
            if restore.status_code != 429:
                break
            await asyncio.sleep(float(restore.headers["retry-after"]))
        assert restore.status_code == 200, restore.text
    assert await inventory() == before
    await asyncio.sleep(WRITE_BURST / WRITE_RATE_PER_S)  # the burst drains: later tests' writes are not limited


def test_no_instance_answering_is_502_or_503_with_retry_after(stack: Stack) -> None:
    apps = [s for s in stack.config.services if s.startswith("app-")]
    try:
        for app in apps:
            stack.stop(app)
        with httpx.Client(base_url=stack.config.url, timeout=5) as client:
            for path in ("/products/1", "/readyz"):
                response = client.get(path)
                assert response.status_code in (502, 503), response.text
                code = "bad_gateway" if response.status_code == 502 else "unavailable"
                assert_nginx_problem(response, response.status_code, code, path, retry_after=True)
    finally:
        for app in apps:
            stack.start(app)
        _wait_until_nginx_reaches_every_instance(stack, len(apps))


def _wait_until_nginx_reaches_every_instance(stack: Stack, count: int, within_s: float = 10.0) -> None:
    """``/readyz`` through nginx is 200, and (with debug headers) from every instance: nginx has
    stopped skipping the ones it marked failed while they were down.
    """
    deadline = time.monotonic() + within_s
    seen: set[str] = set()
    with httpx.Client(base_url=stack.config.url, timeout=2) as client:
        while True:
            response = client.get("/readyz")
            if response.status_code == 200:
                instance = response.headers.get("x-instance")
                if instance is None or len(seen | {instance}) == count:
                    return
                seen.add(instance)
            assert time.monotonic() < deadline, f"nginx does not reach every instance again: {response.status_code}"
            time.sleep(0.1)

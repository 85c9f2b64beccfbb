"""Bad input is a 4xx problem+json naming what is wrong: never a 500, never a write."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

pytestmark = pytest.mark.integration

VALID = {"sku": "OK-1", "name": "Lamp", "category_id": 1, "price_cents": 100}

# (method, path, body or raw bytes, expected status, field named in the problem or None)
CASES: list[tuple[str, str, object, int, str | None]] = [
    ("POST", "/products", {**VALID, "price_cents": -1}, 400, "price_cents"),
    ("POST", "/products", {**VALID, "price_cents": "twelve"}, 400, "price_cents"),
    ("POST", "/products", {**VALID, "price_cents": 1.5}, 400, "price_cents"),
    ("POST", "/products", {**VALID, "price_cents": 10**30}, 400, "price_cents"),
    ("POST", "/products", {**VALID, "inventory": -3}, 400, "inventory"),
    ("POST", "/products", {**VALID, "currency": "usd"}, 400, "currency"),
    ("POST", "/products", {**VALID, "sku": ""}, 400, "sku"),
    ("POST", "/products", {**VALID, "sku": "has space"}, 400, "sku"),
    ("POST", "/products", {**VALID, "name": "x" * 201}, 400, "name"),
    ("POST", "/products", {**VALID, "category_id": 0}, 400, "category_id"),
    ("POST", "/products", {**VALID, "unknown": 1}, 400, "unknown"),
    ("POST", "/products", {k: v for k, v in VALID.items() if k != "name"}, 400, "name"),
    ("POST", "/products", [VALID], 400, None),
    ("POST", "/products", b"{not json", 400, None),
    ("POST", "/products", b"", 400, None),
    ("PATCH", "/products/1", {"name": None}, 400, "name"),
    ("PATCH", "/products/1", {"inventory": 5}, 400, "inventory"),
    ("PATCH", "/products/1", {"version": 9}, 400, "version"),
    ("PATCH", "/products/1", {}, 422, None),
    ("PATCH", "/products/0", {"name": "x"}, 400, "product_id"),
    ("PATCH", "/products/99999999999999999999", {"name": "x"}, 400, "product_id"),
    ("PATCH", "/products/abc", {"name": "x"}, 404, None),
    ("PATCH", "/products/999999", {"name": "x"}, 404, None),
    ("PUT", "/products/1", {"name": "only a name"}, 400, "sku"),
    ("POST", "/products/1/inventory", {"delta": "one"}, 400, "delta"),
    ("POST", "/products/1/inventory", {"delta": 0}, 422, None),
    ("POST", "/products/1/inventory", {"delta": 10**9}, 400, "delta"),
    ("POST", "/products/1/inventory", {}, 400, "delta"),
    ("DELETE", "/products/999999", None, 404, None),
    ("GET", "/products/-1", None, 400, "product_id"),
    ("GET", "/products/999999", None, 404, None),
    ("GET", "/no/such/route", None, 404, None),
    ("POST", "/healthz", None, 405, None),
    # Hostile input: what Postgres cannot store or search, and what a lenient decoder would accept.
    ("POST", "/products", {**VALID, "name": "n\u0000"}, 400, "name"),
    ("POST", "/products", {**VALID, "name": "bell\u0007"}, 400, "name"),
    ("POST", "/products", {**VALID, "name": "two\nlines"}, 400, "name"),
    ("POST", "/products", {**VALID, "description": "ok\nthen\u0000"}, 400, "description"),
    ("POST", "/products", b'{"sku":"S-9","name":"\\ud800","category_id":1,"price_cents":1}', 400, None),
    ("POST", "/products", {**VALID, "price_cents": "12"}, 400, "price_cents"),
    ("POST", "/products", {**VALID, "category_id": True}, 400, "category_id"),
    ("POST", "/products", b"[" * 50_000, 400, None),
    ("POST", "/products", b'{"sku": "S-1"' + b', "a": {"b": ' * 2_000, 400, None),
    ("PATCH", "/products/1", {"price_cents": "12"}, 400, "price_cents"),
    ("POST", "/products/1/inventory", {"delta": "1"}, 400, "delta"),
    (
        "POST",
        "/checkout",
        {"items": [{"product_id": 1, "quantity": "1", "expected_price_cents": 1}]},
        400,
        "items[0].quantity",
    ),
    ("POST", "/checkout", {"items": [{"product_id": 1, "quantity": 1}]}, 400, "items[0].expected_price_cents"),
    (
        "POST",
        "/checkout",
        {"items": [{"product_id": 2**70, "quantity": 1, "expected_price_cents": 1}]},
        400,
        "items[0].product_id",
    ),
    ("GET", "/search/products?q=%00abc", None, 400, "q"),
    ("GET", "/search/products?q=a%01b", None, 400, "q"),
    ("GET", "/search/products", None, 400, "q"),
    ("GET", "/search/products?q=%20%20", None, 400, "q"),
    ("GET", "/search/products?q=lamp&cursor=%00", None, 400, "cursor"),
    ("GET", "/search/products?q=lamp&cursor=" + "A" * 600, None, 400, "cursor"),
    ("GET", "/search/products?q=lamp&cursor=bm90LWEtY3Vyc29y", None, 400, "cursor"),
    ("GET", "/categories/1/products?limit=0", None, 400, "limit"),
    ("GET", "/categories/1/products?limit=101", None, 400, "limit"),
    ("GET", "/recommendations?product_id=abc", None, 400, "product_id"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), CASES)
async def test_bad_input_is_a_problem(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    primary: asyncpg.Connection,
    method: str,
    path: str,
    body: object,
    status: int,
    field: str | None,
) -> None:
    kwargs: dict[str, object] = {"headers": {**admin_headers, "Content-Type": "application/json"}}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    # One shape for every problem.
    assert {"type", "title", "status", "detail", "code", "instance"} <= problem.keys(), problem
    assert problem["status"] == status
    assert problem["type"] == "/problems/" + problem["code"].replace("_", "-")
    assert problem["instance"] == path.split("?", maxsplit=1)[0]
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
        assert all({"field", "message", "source"} <= e.keys() for e in problem["errors"]), problem
        assert field in problem["detail"]
    assert await primary.fetchval("SELECT count(*) FROM outbox_events") == 0, "bad input must not write"


async def test_oversized_body_is_413(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    body = {**VALID, "description": "x" * 70_000}
    response = await client.post("/products", json=body, headers=admin_headers)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthenticated"),
        ({"Authorization": "Bearer "}, 401, "unauthenticated"),
        ({"Authorization": "Bearer wrong-token"}, 403, "forbidden"),
    ],
)
async def test_admin_auth(
    client: httpx.AsyncClient, primary: asyncpg.Connection, headers: dict[str, str], status: int, code: str
) -> None:
    for method, path, body in (
        ("POST", "/products", VALID),
        ("PATCH", "/products/1", {"name": "x"}),
        ("PUT", "/products/1", {**VALID, "description": "", "currency": "USD"}),
        ("POST", "/products/1/inventory", {"delta": 1}),
        ("DELETE", "/products/1", None),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (method, path)
        assert response.json()["code"] == code
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert await primary.fetchval("SELECT count(*) FROM outbox_events") == 0
    assert await primary.fetchval("SELECT max(version) FROM products") == 1

"""HTTP semantics checked by an HTTP linter (httplint, the engine behind REDbot), through nginx.

Representative answers of every kind the API gives (a product, 304, 404, a write and its 412,
401, a checkout, an order and a stranger's 404, OPTIONS, an nginx-written 413) must carry no
message the linter rates "bad". Its warnings are printed, not failed on: some are advice for
public web pages (e.g. caching heuristics) rather than errors.
"""

from __future__ import annotations

import httpx
import pytest
from httplint import HttpResponseLinter

from devtools.stack import Stack

pytestmark = pytest.mark.system


def _lint(response: httpx.Response) -> list[tuple[str, str]]:
    linter = HttpResponseLinter()
    linter.process_response_topline(b"HTTP/1.1", str(response.status_code).encode(), response.reason_phrase.encode())
    linter.process_headers([(name.encode(), value.encode("latin-1")) for name, value in response.headers.multi_items()])
    linter.feed_content(response.content)
    linter.finish_content(True)
    return [(note.level.value, f"{note.__class__.__name__}: {note.summary}") for note in linter.notes]


def test_every_kind_of_answer_is_clean_http(stack: Stack) -> None:
    admin = {"Authorization": f"Bearer {stack.config.admin_token}"}
    answers: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=stack.config.url, timeout=5) as client:
        product = client.get("/products/33")
        answers["product"] = product
        etag = product.headers["etag"]
        answers["not modified"] = client.get("/products/33", headers={"If-None-Match": etag})
        answers["unknown product"] = client.get("/products/999999")
        answers["bad parameter"] = client.get("/categories/1/products", params={"limit": 0})
        answers["write"] = client.patch("/products/33", json={"name": "Linted"}, headers={**admin, "If-Match": etag})
        answers["stale write"] = client.patch("/products/33", json={"name": "x"}, headers={**admin, "If-Match": etag})
        answers["no credentials"] = client.patch("/products/33", json={"name": "x"})
        price = client.get("/products/34").json()["price_cents"]
        placed = client.post(
            "/checkout", json={"items": [{"product_id": 34, "quantity": 1, "expected_price_cents": price}]}
        )
        answers["checkout"] = placed
        order = placed.json()
        answers["order"] = client.get(f"/orders/{order['order_id']}", headers={"X-Order-Token": order["order_token"]})
        answers["stranger's order"] = client.get(f"/orders/{order['order_id']}")
        answers["options"] = client.options("/products/33")
        answers["too large (nginx)"] = client.patch("/products/33", content=b"x" * 70_000, headers=admin)
    expected = {"product": 200, "not modified": 304, "unknown product": 404, "bad parameter": 400, "write": 200,
                "stale write": 412, "no credentials": 401, "checkout": 201, "order": 200, "stranger's order": 404,
                "options": 204, "too large (nginx)": 413}  # fmt: skip
    bad: dict[str, list[str]] = {}
    for name, response in answers.items():
        assert response.status_code == expected[name], (name, response.text)
        notes = _lint(response)
        print(f"{name} ({response.status_code}): " + "; ".join(text for level, text in notes if level == "warning"))
        if failures := [text for level, text in notes if level == "bad"]:
            bad[name] = failures
    assert bad == {}

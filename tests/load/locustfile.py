"""The standard load mix for the catalog, for locust.

Run it with ``ops/load`` (headless, bounded, reports under ``.run/load/``):

    ops/load                 # 60 s, 40 users, against CATALOG_URL from .run/stack.env
    ops/load -t 30s -u 80    # any locust option passes through
    ops/load --peak          # ramp up, hold, spike, recover (tests/load/peak_shape.py)

The mix (per request, roughly): ~90% display reads — product views with Zipf-distributed
popularity, searches from the seeded vocabulary with Zipf-distributed query popularity (some
with typos), category browsing that follows
cursors, recommendations, top sellers — ~1% admin writes (price, description, inventory) by
writer users who read their own write back at once, and ~3% checkouts that send the price the
shopper last saw. A writer who does not see their own write is a read-your-writes violation: a
locust failure, and a non-zero exit.

Product ids are drawn from the products that exist (ops/devtools/load/universe.py): ``ops/load``
writes the live ids to CATALOG_LOAD_IDS_FILE and keeps it current while the run lasts, so a 404
on a product the mix picked is a real failure, but for one archived since the last refresh.

Environment: CATALOG_URL (the -H host), CATALOG_ADMIN_TOKEN, CATALOG_LOAD_IDS_FILE (live product
ids; without it, 1..CATALOG_LOAD_PRODUCTS), CATALOG_LOAD_CATEGORIES, CATALOG_LOAD_CHECKOUT (0 to
leave checkouts out).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task

from app.seed.vocabulary import ADJECTIVES, BRANDS, CATEGORIES, MATERIALS
from devtools.load.universe import ProductUniverse, zipf_sampler

PRODUCTS = int(os.environ.get("CATALOG_LOAD_PRODUCTS", "10000"))
CATEGORY_COUNT = int(os.environ.get("CATALOG_LOAD_CATEGORIES", "16"))
ADMIN = {"Authorization": f"Bearer {os.environ.get('CATALOG_ADMIN_TOKEN', '')}"}
ZIPF_S = 1.1

CHECKOUTS = os.environ.get("CATALOG_LOAD_CHECKOUT", "1") == "1"
_violations = 0


_IDS_FILE = os.environ.get("CATALOG_LOAD_IDS_FILE")
popular_product = ProductUniverse(Path(_IDS_FILE) if _IDS_FILE else None, fallback=PRODUCTS, s=ZIPF_S)
_NOUNS = [noun for nouns in CATEGORIES.values() for noun in nouns]


def _make_search_term(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        term = rng.choice(_NOUNS).lower()
    elif roll < 0.7:
        term = f"{rng.choice(MATERIALS)} {rng.choice(_NOUNS)}".lower()
    elif roll < 0.85:
        term = rng.choice(ADJECTIVES + BRANDS).lower()
    else:  # a typo: drop one letter of a longer word
        word = rng.choice([w for w in _NOUNS if len(w) > 5]).lower()
        cut = rng.randrange(1, len(word) - 1)
        term = word[:cut] + word[cut + 1 :]
    return term


# Search queries repeat the way real ones do: a few are very popular, most are rare (Zipf over
# 3000 distinct queries built from the seeded vocabulary, typos included).
_rng = random.Random(11)
_QUERIES = [_make_search_term(_rng) for _ in range(3000)]
_popular_query = zipf_sampler(range(len(_QUERIES)), 1.0, seed=13)


def _search_term() -> str:
    return _QUERIES[_popular_query()]


def _violation(user: FastHttpUser, name: str, detail: str) -> None:
    global _violations  # noqa: PLW0603  (one counter for the whole run, read at quit)
    _violations += 1
    user.environment.events.request.fire(
        request_type="RYW",
        name=name,
        response_time=0,
        response_length=0,
        exception=AssertionError(detail),
        context={},
    )


class Shopper(FastHttpUser):
    """Browses, searches and sometimes buys: the display-read hot path."""

    weight = 37
    wait_time = between(0.0, 0.02)

    def on_start(self) -> None:
        self.seen_prices: dict[int, int] = {}

    def _view(self, product_id: int) -> None:
        with self.client.get(f"/products/{product_id}", name="/products/{id}", catch_response=True) as response:
            if response.status_code == 200:
                self.seen_prices[product_id] = response.json()["price_cents"]
                response.success()
            elif response.status_code == 404:
                response.success()  # archived by an admin: a normal answer

    @task(55)
    def view_product(self) -> None:
        self._view(popular_product())

    @task(15)
    def search(self) -> None:
        self.client.get("/search/products", params={"q": _search_term(), "limit": 20}, name="/search/products")

    @task(12)
    def browse_category(self) -> None:
        category = random.randint(1, CATEGORY_COUNT)
        path = f"/categories/{category}/products"
        response = self.client.get(path, params={"limit": 20}, name="/categories/{id}/products")
        for _ in range(random.choice((0, 0, 1, 2, 3))):
            if response.status_code != 200 or not (cursor := response.json().get("next_cursor")):
                break
            response = self.client.get(path, params={"limit": 20, "cursor": cursor}, name="/categories/{id}/products")

    @task(8)
    def recommendations(self) -> None:
        self.client.get(
            "/recommendations", params={"product_id": popular_product(), "limit": 8}, name="/recommendations"
        )

    @task(5)
    def top_selling(self) -> None:
        self.client.get("/products/top-selling", params={"limit": 20}, name="/products/top-selling")

    @task(3)
    def checkout(self) -> None:
        if not CHECKOUTS or not self.seen_prices:
            return
        product_id = random.choice(list(self.seen_prices))
        body = {"items": [{"product_id": product_id, "quantity": 1,
                           "expected_price_cents": self.seen_prices[product_id]}]}  # fmt: skip
        with self.client.post("/checkout", json=body, name="/checkout", catch_response=True) as response:
            if response.status_code == 201:
                response.success()
            elif response.status_code == 409:
                # The truth moved on (price_changed) or sold out: correct answers, not failures.
                problem = response.json()
                if problem.get("code") == "price_changed":
                    for item in problem.get("items", []):
                        self.seen_prices[item["product_id"]] = item["price_cents"]
                response.success()
            elif response.status_code == 404 and response.json().get("code") != "not_found":
                response.success()  # the product was archived meanwhile


class Writer(FastHttpUser):
    """An admin editing the catalog, who must see each write on the very next read."""

    weight = 3
    wait_time = between(0.1, 0.3)

    def _check_own_write(self, product_id: int, version: int, expected: dict[str, Any]) -> None:
        """The next read must show this write: its version, or a later one (another writer's)."""
        with self.client.get(f"/products/{product_id}", name="/products/{id} (own write)", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
                return
            product = r.json()
            seen = product.get("version", 0)
            if seen < version or (seen == version and any(product.get(k) != v for k, v in expected.items())):
                r.failure("read-your-writes violation")
                _violation(self, "product", f"product {product_id}: expected {expected}, got {product}")
            else:
                r.success()

    @task(4)
    def change_price(self) -> None:
        product_id = popular_product()
        price = random.randrange(99, 99_999)
        response = self.client.patch(
            f"/products/{product_id}", json={"price_cents": price}, headers=ADMIN, name="/products/{id} PATCH price"
        )
        if response.status_code == 200:
            self._check_own_write(product_id, response.json()["version"], {"price_cents": price})

    @task(2)
    def change_description(self) -> None:
        product_id = popular_product()
        text = f"Updated {random.choice(ADJECTIVES).lower()} edition #{random.randrange(10**6)}."
        response = self.client.patch(
            f"/products/{product_id}",
            json={"description": text},
            headers=ADMIN,
            name="/products/{id} PATCH description",
        )
        if response.status_code == 200:
            self._check_own_write(product_id, response.json()["version"], {"description": text})

    @task(2)
    def restock(self) -> None:
        product_id = popular_product()
        with self.client.post(
            f"/products/{product_id}/inventory",
            json={"delta": random.randint(1, 20)},
            headers=ADMIN,
            name="/products/{id}/inventory",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                response.success()
                written = response.json()
                self._check_own_write(product_id, written["version"], {"inventory": written["inventory"]})


@events.quitting.add_listener
def _exit_code(environment: Any, **_: Any) -> None:
    stats = environment.stats.total
    print(f"\nread-your-writes violations: {_violations}")
    print(f"requests: {stats.num_requests}, failures: {stats.num_failures}")
    if _violations or stats.num_failures:
        environment.process_exit_code = 1

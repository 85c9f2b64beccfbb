"""The endpoint-policy table: every route's path class, freshness and caching, in one place.

This table *is* the design (docs/architecture.md). Route decorators take their path, name, OpenAPI
description and ``Cache-Control`` from it, the admin guard reads ``admin`` from it, and the
hotpath report reads all of it. A route without an entry fails ``tests/unit/contracts/test_policy.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from litestar.openapi.datastructures import ResponseSpec

from app.core.problems import PROBLEM_JSON, ProblemBody


class PathClass(StrEnum):
    FAST = "fast"  # display read: cache → replica (lag-aware) → primary
    WRITE = "write"  # primary transaction + outbox + NOTIFY
    DECISION = "decision"  # primary only, never cache or replica
    OPS = "ops"  # health, metrics, schema


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    name: str
    method: str
    path: str  # Litestar path template, exactly as mounted
    path_class: PathClass
    freshness: str
    cache_control: str
    why: str
    cache_key: str | None = None
    cache_ttl_s: int | None = None
    admin: bool = False  # Bearer admin token required (checked by the admin middleware in app/core/auth.py)
    # The problem statuses this endpoint answers with (all problem+json): the contract's error list.
    problems: tuple[int, ...] = ()

    def handler_kwargs(self, responses: dict[int, ResponseSpec] | None = None) -> dict[str, Any]:
        """Keyword arguments for the route decorator, so the route cannot drift from its policy.

        ``responses`` are the route's successes; every problem status of the policy is added, each
        with the problem schema.
        """
        kwargs: dict[str, Any] = {
            "path": self.path,
            "name": self.name,
            "operation_id": self.name,
            "description": self.describe(),
            "opt": {"policy": self},
            "response_headers": {"Cache-Control": self.cache_control},
            "responses": {**(responses or {}), **{status: _problem_spec(status) for status in self.problems}},
        }
        if self.admin:
            kwargs["tags"] = ["admin"]
            kwargs["security"] = [{ADMIN_SECURITY: []}]
        return kwargs

    @property
    def template(self) -> str:
        """The path as metrics label it (Litestar's ``path_template``): no parameter types."""
        return re.sub(r"\{(\w+):\w+\}", r"{\1}", self.path)

    def describe(self) -> str:
        cache = f" Cache: `{self.cache_key}` (TTL {self.cache_ttl_s}s)." if self.cache_key else ""
        return f"**{self.path_class.value} path.** Freshness: {self.freshness}.{cache} {self.why}"


_NO_STORE = "no-store"
ADMIN_SECURITY = "adminBearer"  # the OpenAPI security scheme of the admin routes (app/main.py)
_DISPLAY = (400, 404, 503)  # bad parameters, unknown id, no fresh-enough copy (RYW with the primary down)
_ADMIN = (400, 401, 403, 404, 409, 412, 413, 429, 503)  # 429: nginx's write rate limit
_WHY = {
    400: "Invalid input: the fields at fault are named in `errors`",
    401: "No Bearer token",
    403: "A Bearer token that is not an admin token",
    404: "No such resource (or, for an order, no valid X-Order-Token)",
    409: "Conflicts with the current state (see `code`)",
    412: "If-Match names another version",
    413: "The body is larger than the limit",
    422: "Well-formed but refers to something that cannot be used (see `code`)",
    429: "Too many writes from this client (nginx); see Retry-After",
    503: "A database is unavailable or out of time; see Retry-After",
}


def _problem_spec(status: int) -> ResponseSpec:
    return ResponseSpec(
        data_container=ProblemBody,
        media_type=PROBLEM_JSON,
        description=_WHY.get(status, "A problem"),
        generate_examples=False,
    )


POLICIES: tuple[EndpointPolicy, ...] = (
    EndpointPolicy(
        name="product.get",
        problems=_DISPLAY,
        method="GET",
        path="/products/{product_id:int}",
        path_class=PathClass.FAST,
        freshness="read-your-writes for the writer; others may lag by at most max_replica_lag",
        cache_control="no-cache",
        cache_key="product:{id}",  # + fence {product:{id}}:fence
        cache_ttl_s=300,
        why="The product page is the hottest read; serve it from cache or a replica, never the primary "
        "while a healthy replica exists.",
    ),
    EndpointPolicy(
        name="search.products",
        problems=(400, 503),
        method="GET",
        path="/search/products",
        path_class=PathClass.FAST,
        freshness="up to the TTL plus replica lag after a write; read-your-writes for the writer",
        cache_control="public, max-age=15",
        cache_key="search:{generation}:{query}:{limit}:{cursor}",
        cache_ttl_s=30,
        why="Search is the second hottest read and tolerates seconds of staleness; popular queries repeat.",
    ),
    EndpointPolicy(
        name="category.products",
        problems=_DISPLAY,
        method="GET",
        path="/categories/{category_id:int}/products",
        path_class=PathClass.FAST,
        freshness="up to the TTL plus replica lag after a write; read-your-writes for the writer",
        cache_control="public, max-age=15",
        cache_key="category:{generation}:{id}:{limit}:{cursor}",
        cache_ttl_s=60,
        why="Category browsing repeats the same first pages for everyone.",
    ),
    EndpointPolicy(
        name="products.top_selling",
        problems=(400, 503),
        method="GET",
        path="/products/top-selling",
        path_class=PathClass.FAST,
        freshness="minutes: an aggregate over 30 days of orders",
        cache_control="public, max-age=60",
        cache_key="top-selling:{generation}:{limit}",
        cache_ttl_s=60,
        why="One expensive aggregate, identical for every visitor: compute once a minute, not per request.",
    ),
    EndpointPolicy(
        name="recommendations",
        problems=(400,),
        method="GET",
        path="/recommendations",
        path_class=PathClass.FAST,
        freshness="minutes; degrades to [] rather than failing the page",
        cache_control="public, max-age=60",
        cache_key="recommendations:{product_id}:{limit}",
        cache_ttl_s=120,
        why="A widget, not the page: cached long, and an error returns an empty list.",
    ),
    EndpointPolicy(
        name="product.create",
        problems=(400, 401, 403, 409, 413, 422, 429, 503),
        method="POST",
        path="/products",
        path_class=PathClass.WRITE,
        admin=True,
        freshness="the truth",
        cache_control=_NO_STORE,
        why="Admin write: one primary transaction with its outbox event.",
    ),
    EndpointPolicy(
        name="product.replace",
        problems=(*_ADMIN, 422),
        method="PUT",
        path="/products/{product_id:int}",
        path_class=PathClass.WRITE,
        admin=True,
        freshness="the truth",
        cache_control=_NO_STORE,
        why="Admin write; If-Match guards against lost updates.",
    ),
    EndpointPolicy(
        name="product.update",
        problems=(*_ADMIN, 422),
        method="PATCH",
        path="/products/{product_id:int}",
        path_class=PathClass.WRITE,
        admin=True,
        freshness="the truth",
        cache_control=_NO_STORE,
        why="Admin write; If-Match guards against lost updates.",
    ),
    EndpointPolicy(
        name="product.adjust_inventory",
        problems=(*_ADMIN, 422),
        method="POST",
        path="/products/{product_id:int}/inventory",
        path_class=PathClass.WRITE,
        admin=True,
        freshness="the truth",
        cache_control=_NO_STORE,
        why="Relative, atomic stock change; refuses to go below zero.",
    ),
    EndpointPolicy(
        name="product.archive",
        problems=(400, 401, 403, 404, 412, 429, 503),
        method="DELETE",
        path="/products/{product_id:int}",
        path_class=PathClass.WRITE,
        admin=True,
        freshness="the truth",
        cache_control=_NO_STORE,
        why="Archives the product; display reads then answer 404.",
    ),
    EndpointPolicy(
        name="checkout",
        problems=(400, 404, 409, 413, 422, 503),
        method="POST",
        path="/checkout",
        path_class=PathClass.DECISION,
        freshness="the truth, under row locks",
        cache_control="no-store",
        why="Money and stock: the primary's price and inventory under FOR UPDATE, never a cache or replica. "
        "The price the shopper saw is checked, not trusted.",
    ),
    EndpointPolicy(
        name="order.get",
        problems=(400, 404, 503),
        method="GET",
        path="/orders/{order_id:int}",
        path_class=PathClass.DECISION,
        freshness="the truth",
        cache_control="no-store",  # (no-store already keeps shared caches out: "private" would only conflict)
        why="An order confirmation must show what was charged, so it is read from the primary.",
    ),
    EndpointPolicy(
        name="ops.healthz",
        method="GET",
        path="/healthz",
        path_class=PathClass.OPS,
        freshness="live",
        cache_control=_NO_STORE,
        why="Liveness: the process answers. Touches nothing else.",
    ),
    EndpointPolicy(
        name="ops.readyz",
        method="GET",
        path="/readyz",
        path_class=PathClass.OPS,
        freshness="live",
        cache_control=_NO_STORE,
        why="Readiness: primary, each replica with its lag, Redis.",
    ),
    EndpointPolicy(
        name="ops.metrics",
        method="GET",
        path="/metrics",
        path_class=PathClass.OPS,
        freshness="live",
        cache_control=_NO_STORE,
        why="Prometheus scrape endpoint of this instance.",
    ),
    EndpointPolicy(
        name="ops.openapi",
        method="GET",
        path="/schema/openapi.json",
        path_class=PathClass.OPS,
        freshness="per deploy",
        cache_control="no-cache",
        why="The OpenAPI document, generated from the routes and this table.",
    ),
)

POLICY_BY_NAME: dict[str, EndpointPolicy] = {p.name: p for p in POLICIES}
POLICY_BY_ROUTE: dict[tuple[str, str], EndpointPolicy] = {(p.method, p.path): p for p in POLICIES}


def policy(name: str) -> EndpointPolicy:
    """The policy of a named endpoint; a KeyError here is a route missing from the table."""
    return POLICY_BY_NAME[name]


# Routes the OpenAPI plugin mounts beside /schema/openapi.json (its default page and 404 catch-all).
FRAMEWORK_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/schema"), ("GET", "/schema/{path:str}")})

"""The smoke check of a running compose stack, through nginx as a user would go: every replica
streams and holds the catalog, /readyz says every dependency is up, a write is read back by its
writer at once and by everyone else once the relay has invalidated the cache, a checkout places an
order that reads back from the primary.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from devtools.containers.engine import EngineError
from devtools.containers.project import Container, Project

INVALIDATION_BOUND_S = 10.0


@dataclass
class Smoke:
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    def record(self, name: str, ok: bool, detail: str) -> bool:
        self.steps.append((name, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(ok for _, ok, _ in self.steps)


def replicas_stream(project: Project, containers: list[Container], smoke: Smoke) -> None:
    """pg_is_in_recovery() and the catalog's rows on every replica container; in the HA topology
    on every Patroni member, exactly one of which is the primary."""
    sql = "SELECT pg_is_in_recovery(), (SELECT count(*) FROM products)"
    members = [c for c in containers if c.service.startswith("pg-")]
    primaries = []
    for c in members or [c for c in containers if c.service.startswith("replica")]:
        result = project.engine.run("exec", c.id, "psql", "-U", "postgres", "-d", "catalog", "-tAc", sql, check=False)
        recovery, _, rows = result.stdout.strip().partition("|")
        holds = result.returncode == 0 and rows.isdigit() and int(rows) > 0
        if members and recovery == "f":
            primaries.append(c.service)
            smoke.record(f"{c.service} is the primary", holds, f"{rows or '?'} products")
            continue
        detail = f"in recovery: {recovery or '?'}, {rows or '?'} products"
        smoke.record(f"{c.service} streams", holds and recovery == "t", detail)
    if members:
        smoke.record("one primary", len(primaries) == 1, f"Patroni's primary: {', '.join(primaries) or 'none'}")


def run_smoke(project: Project, url: str, admin_token: str, say: Callable[[str], None]) -> Smoke:
    smoke = Smoke()
    replicas_stream(project, project.containers(), smoke)
    auth = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=url, timeout=5.0) as anonymous, httpx.Client(base_url=url, timeout=5.0) as writer:
        try:
            _through_nginx(anonymous, writer, auth, smoke)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            smoke.record("requests through nginx", False, f"{type(exc).__name__}: {exc}")
    for name, ok, detail in smoke.steps:
        say(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return smoke


def _through_nginx(anonymous: httpx.Client, writer: httpx.Client, auth: dict[str, str], smoke: Smoke) -> None:
    ready = anonymous.get("/readyz")
    body = ready.json()
    replicas = body.get("replicas", {})
    eligible = [name for name, check in replicas.items() if check.get("eligible")]
    smoke.record(
        "readyz",
        ready.status_code == 200 and body.get("status") == "ok" and len(eligible) == len(replicas) > 0,
        f"{ready.status_code} {body.get('status')}, replicas in rotation: {len(eligible)}/{len(replicas)}",
    )

    # A product with stock, so the checkout below can buy one.
    product_id, before = 0, httpx.Response(404)
    for candidate in range(1, 51):
        before = anonymous.get(f"/products/{candidate}")
        if before.status_code == 200 and int(before.json().get("inventory", 0)) > 0:
            product_id = candidate
            break
    if not smoke.record("product page", product_id > 0, f"{before.status_code}, product {product_id} in stock"):
        return
    old_price = int(before.json()["price_cents"])
    new_price = old_price + 1 if old_price < 9_999_999 else old_price - 1
    written = writer.patch(f"/products/{product_id}", json={"price_cents": new_price}, headers=auth)
    if not smoke.record(
        "write", written.status_code == 200, f"{written.status_code}, price {old_price} -> {new_price}"
    ):
        return

    own = writer.get(f"/products/{product_id}")
    smoke.record(
        "read-your-writes",
        own.status_code == 200 and int(own.json()["price_cents"]) == new_price,
        f"the writer's next read shows {own.json().get('price_cents')}",
    )

    started = time.monotonic()
    seen = old_price
    while time.monotonic() - started < INVALIDATION_BOUND_S:
        seen = int(anonymous.get(f"/products/{product_id}").json()["price_cents"])
        if seen == new_price:
            break
        time.sleep(0.05)
    took = time.monotonic() - started
    smoke.record(
        "invalidation",
        seen == new_price,
        f"another reader saw the new price after {took:.2f} s"
        if seen == new_price
        else f"still {seen} after {took:.0f} s",
    )

    order = anonymous.post(
        "/checkout",
        json={"items": [{"product_id": product_id, "quantity": 1, "expected_price_cents": new_price}]},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    if not smoke.record(
        "checkout", order.status_code == 201, f"{order.status_code} {order.json().get('code', '')}".strip()
    ):
        return
    placed = order.json()
    order_id = placed["order_id"]
    fetched = anonymous.get(f"/orders/{order_id}", headers={"X-Order-Token": placed["order_token"]})
    smoke.record("order reads back", fetched.status_code == 200, f"order {order_id}: {fetched.status_code}")


def require(smoke: Smoke) -> None:
    if not smoke.ok:
        failed = [name for name, ok, _ in smoke.steps if not ok]
        raise EngineError(f"smoke check failed: {', '.join(failed)}")

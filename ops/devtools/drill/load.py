"""The standard mixed load through nginx, as asyncio workers (the ideas of tests/load/locustfile.py,
without locust: the drill needs per-phase counts and its own read-your-writes check in-process).

Each worker is one shopper and one admin, each with its own httpx client and cookie jar, so a
writer's read-your-writes cookie travels with that writer's next read and with nobody else's.
Every request has a timeout, so a frozen dependency shows up as failed requests, never as a hang.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from app.seed.vocabulary import CATEGORIES

HOT_PRODUCTS = 200
TIMEOUT_S = 5.0
ZIPF_S = 1.1
# nginx limits non-GET requests to /products per client address (50 r/s, burst 100; ops/nginx). All
# of the drill's writes come from one address, so they are paced below that, leaving room for the
# recovery probe's ~10/s: a 429 would measure the drill, not the fault.
WRITE_RATE_PER_S = 25.0
ACTIONS = ("hot", "cold", "search", "category", "write", "checkout")
WEIGHTS = (50, 15, 15, 10, 5, 5)
# Single search words every seeded catalog contains ("Desk Lamp" -> "lamp").
SEARCH_WORDS = sorted({noun.split()[-1].lower() for nouns in CATEGORIES.values() for noun in nouns})


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the load picks from: product ids (hot ones Zipf-distributed) and category ids."""

    max_product_id: int
    categories: int
    hot_ids: tuple[int, ...]
    hot_weights: tuple[float, ...]  # cumulative

    def hot(self, rng: random.Random) -> int:
        return rng.choices(self.hot_ids, cum_weights=self.hot_weights)[0]

    def cold(self, rng: random.Random) -> int:
        return rng.randint(1, self.max_product_id)


async def read_catalog(primary_dsn: str) -> Catalog:
    """Ids as the primary has them now; hot ranks map to the first ids, shuffled with a fixed seed."""
    conn = await asyncpg.connect(primary_dsn, server_settings={"application_name": "catalog.ops"}, timeout=5)
    try:
        max_id = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM products") or 0)
        categories = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM categories") or 0)
    finally:
        await conn.close()
    if max_id < 1 or categories < 1:
        raise RuntimeError("the catalog is empty: run ops/dev up (it seeds the demo catalog)")
    ids = list(range(1, min(HOT_PRODUCTS, max_id) + 1))
    random.Random(7).shuffle(ids)
    weights = tuple(itertools.accumulate(1.0 / (k**ZIPF_S) for k in range(1, len(ids) + 1)))
    return Catalog(max_id, categories, tuple(ids), weights)


@dataclass
class Tally:
    """Every response of one phase, classified."""

    display_ok: int = 0
    display_failed: int = 0
    writes_ok: int = 0
    writes_refused: int = 0
    writes_failed: int = 0
    writes_rejected: int = 0
    writes_retried: int = 0  # answer lost (the instance died mid-request): sent once more, safely
    reads_retried: int = 0  # connection broke mid-answer: a GET sent once more
    server_errors: int = 0
    ryw_checked: int = 0
    ryw_refused: int = 0
    ryw_violations: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def display_failure(self, kind: str, failure: httpx.Response | Exception) -> None:
        self.display_failed += 1
        self.problems[problem(kind, failure)] += 1
        if isinstance(failure, httpx.Response) and failure.status_code >= 500 and failure.status_code != 503:
            self.server_errors += 1


# The app never answers 502 or 504: those are nginx's own, when an instance died or stalled
# mid-request (nginx writes them as problem+json too, so the status is what tells).
GATEWAY_ERRORS = (502, 504)


def _answer_lost(response: httpx.Response | Exception) -> bool:
    """No answer, or nginx's gateway error: the write may or may not have landed."""
    return isinstance(response, Exception) or response.status_code in GATEWAY_ERRORS


def problem(kind: str, failure: httpx.Response | Exception) -> str:
    """``"write 500"``, ``"write 502 (nginx)"``, ``"read ReadTimeout"``: 502 and 504 are nginx's
    (an instance unreachable or gone mid-request); the app never sends them.
    """
    if isinstance(failure, Exception):
        return f"{kind} {type(failure).__name__}"
    origin = " (nginx)" if failure.status_code in GATEWAY_ERRORS else ""
    return f"{kind} {failure.status_code}{origin}"


class Pacer:
    """Spaces calls ``1 / rate`` seconds apart across every worker that shares it."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_at = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self.next_at)
        self.next_at = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def _client(url: str, headers: dict[str, str] | None = None, timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s, limits=httpx.Limits(max_connections=2))


class Load:
    """``start()`` the workers, ``stop()`` them and get the phase's :class:`Tally`."""

    def __init__(
        self,
        url: str,
        admin_token: str,
        catalog: Catalog,
        *,
        workers: int,
        written: set[int],
        seed: int = 1,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.url = url
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.catalog = catalog
        self.workers = workers
        self.written = written  # every product id a write was attempted on, across phases
        self.seed = seed
        self.timeout_s = timeout_s  # per request; the HA drill waits out the app's own statement bound
        self.tally = Tally()
        self.pacer = Pacer(WRITE_RATE_PER_S)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]

    async def stop(self) -> Tally:
        """Let each worker finish its current action (bounded), then cancel what is left."""
        self._stop.set()
        _, pending = await asyncio.wait(self._tasks, timeout=self.timeout_s + 1)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.tally

    async def _worker(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        async with (
            _client(self.url, timeout_s=self.timeout_s) as shopper,
            _client(self.url, self.admin, self.timeout_s) as writer,
        ):
            while not self._stop.is_set():
                action = rng.choices(ACTIONS, WEIGHTS)[0]
                if action == "hot":
                    await self._display(shopper, f"/products/{self.catalog.hot(rng)}", product=True)
                elif action == "cold":
                    await self._display(shopper, f"/products/{self.catalog.cold(rng)}", product=True)
                elif action == "search":
                    await self._display(shopper, "/search/products", {"q": rng.choice(SEARCH_WORDS), "limit": 20})
                elif action == "category":
                    category = rng.randint(1, self.catalog.categories)
                    await self._display(shopper, f"/categories/{category}/products", {"limit": 20})
                elif action == "write":
                    await self._admin_write(writer, rng)
                else:
                    await self._checkout(shopper, rng)

    async def _display(
        self, client: httpx.AsyncClient, path: str, params: dict[str, Any] | None = None, *, product: bool = False
    ) -> httpx.Response | None:
        """A display read; 2xx/304 count as served, and so does a 404 for a product (archived or absent).

        Like any HTTP client, a read whose connection broke mid-answer (an instance killed after its
        response had started, which nginx cannot turn into an error page) is sent once more: a GET
        is safe to repeat.
        """
        try:
            response = await client.get(path, params=params)
        except httpx.TransportError:
            self.tally.reads_retried += 1
            try:
                response = await client.get(path, params=params)
            except httpx.HTTPError as exc:
                self.tally.display_failure("read", exc)
                return None
        except httpx.HTTPError as exc:
            self.tally.display_failure("read", exc)
            return None
        if response.is_success or response.status_code == 304 or (product and response.status_code == 404):
            self.tally.display_ok += 1
            return response
        self.tally.display_failure("read", response)
        return None

    async def _write(
        self, client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> Any:
        """Send one write and classify the answer; returns the JSON body of a 2xx, else None.

        The drill's clients behave as the API asks of any client: every write carries what makes
        it safe to send twice (an ``Idempotency-Key`` for a checkout, ``If-Match`` for an admin
        write), and is sent once more when the answer was lost: no answer at all, or nginx's own
        502/504 because the instance died mid-request (nginx never replays a POST or PATCH
        itself). A retry's 412 means the lost attempt had landed.
        """
        kind = "checkout" if path == "/checkout" else "write"
        response: httpx.Response | Exception
        for attempt in (1, 2):
            try:
                response = await client.request(method, path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                response = exc
            if attempt == 1 and _answer_lost(response):
                self.tally.writes_retried += 1
                self.tally.problems[problem(kind, response) + ", sent again"] += 1
                continue
            break
        if isinstance(response, Exception):
            self.tally.writes_failed += 1
            self.tally.problems[problem(kind, response)] += 1
            return None
        status = response.status_code
        if response.is_success or (kind == "checkout" and status == 409):  # sold out or repriced: an answer
            self.tally.writes_ok += 1
            return response.json() if response.is_success else None
        if status == 412 and attempt == 2:  # the attempt whose answer was lost had committed
            self.tally.writes_ok += 1
            return None
        self.tally.problems[problem(kind, response)] += 1
        if status == 503 and "retry-after" in response.headers:
            self.tally.writes_refused += 1
        elif status >= 500:
            self.tally.writes_failed += 1
            self.tally.server_errors += status != 503
        else:
            self.tally.writes_rejected += 1
        return None

    async def _admin_write(self, writer: httpx.AsyncClient, rng: random.Random) -> None:
        product_id = self.catalog.hot(rng) if rng.random() < 0.7 else self.catalog.cold(rng)
        current = await self._display(writer, f"/products/{product_id}", product=True)
        if current is None or current.status_code != 200:
            return
        self.written.add(product_id)  # before sending: a write whose answer is lost may still commit
        await self.pacer.wait()
        field_name = "price_cents" if rng.random() < 0.5 else "name"
        value: object = rng.randrange(99, 99_999) if field_name == "price_cents" else f"Drill {rng.randrange(10**6)}"
        if_match = {"If-Match": current.headers.get("etag", "*")}
        body = await self._write(writer, "PATCH", f"/products/{product_id}", {field_name: value}, if_match)
        if body is not None:
            await self._read_own_write(writer, product_id, int(body["version"]), field_name, value)

    async def _read_own_write(
        self, writer: httpx.AsyncClient, product_id: int, version: int, field_name: str, value: object
    ) -> None:
        """The writer's next read, with its cookie: an older version (or this version without the
        written value) is a read-your-writes violation; a 503 is a refusal, not a violation.
        """
        try:
            response = await writer.get(f"/products/{product_id}")
        except httpx.HTTPError as exc:
            self.tally.display_failure("own-write read", exc)
            return
        if response.status_code == 503:
            self.tally.ryw_refused += 1
        if not response.is_success:
            self.tally.display_failure("own-write read", response)
            return
        self.tally.display_ok += 1
        self.tally.ryw_checked += 1
        product = response.json()
        seen = int(product.get("version", 0))
        if seen < version or (seen == version and product.get(field_name) != value):
            self.tally.ryw_violations += 1
            if len(self.tally.examples) < 5:
                source = response.headers.get("x-read-source", "?")
                self.tally.examples.append(
                    f"product {product_id}: wrote v{version}, read v{seen} from {source} "
                    f"via {response.headers.get('x-instance', '?')}"
                )

    async def _checkout(self, shopper: httpx.AsyncClient, rng: random.Random) -> None:
        product_id = self.catalog.hot(rng)
        response = await self._display(shopper, f"/products/{product_id}", product=True)
        if response is None or response.status_code != 200:
            return
        try:
            price = int(response.json()["price_cents"])
        except (ValueError, KeyError):
            self.tally.problems["read without a price"] += 1
            return
        self.written.add(product_id)
        line = {"product_id": product_id, "quantity": 1, "expected_price_cents": price}
        await self._write(shopper, "POST", "/checkout", {"items": [line]}, {"Idempotency-Key": uuid.uuid4().hex})

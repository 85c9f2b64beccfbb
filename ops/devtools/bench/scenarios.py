"""The benchmark scenarios behind ``ops/bench`` other than the HTTP ratios and the outbox drain."""

from __future__ import annotations

import asyncio
import csv
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from app.admin_cli.hotpath import Samples, build_rows, merge, scrape
from app.contracts.cache_keys import product_key
from app.core.settings import CacheSettings, RelaySettings
from app.core.sql import queries
from app.invalidation.relay import OutboxRelay
from app.seed.seed import seed
from app.seed.vocabulary import ADJECTIVES, BRANDS, CATEGORIES, MATERIALS
from devtools.bench.scratch import drop_database, scratch_database

CATALOG_Q = queries("catalog")
OPS_LOAD = Path(__file__).resolve().parents[2] / "load"  # ops/load
LOAD_REPORTS = Path(__file__).resolve().parents[3] / ".run" / "load"  # where ops/load writes its CSVs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ------------------------------------------------------------------------------ load mix


@dataclass(frozen=True, slots=True)
class HitWindow:
    """Cache hits over one window of the run: product pages, and all display reads."""

    ends_at_s: float
    product_reads: float
    product_hit: float
    display_reads: float
    display_hit: float


@dataclass(frozen=True, slots=True)
class MixResult:
    seconds: int
    display_reads: float
    primary_per_1000: float
    cache_hit: float
    locust_exit: int
    windows: list[HitWindow]
    # Through nginx, as locust saw them: request name -> (p50 ms, p99 ms, requests/s).
    latencies: dict[str, tuple[float, float, float]]

    @property
    def steady(self) -> HitWindow | None:
        """The last window: the ratio once the cache has warmed up (see :attr:`converged`)."""
        return self.windows[-1] if self.windows else None

    @property
    def converged(self) -> bool:
        """The last two windows agree within a point: the curve has flattened."""
        if len(self.windows) < 2:
            return False
        a, b = self.windows[-2], self.windows[-1]
        return abs(a.product_hit - b.product_hit) <= 0.01 and abs(a.display_hit - b.display_hit) <= 0.01


def _hits(samples: Samples) -> tuple[float, float, float, float]:
    """(product reads, product hits, display reads, display hits) in a metrics diff."""
    rows, _summary = build_rows(samples)
    product = display = product_hits = display_hits = 0.0
    for row in rows:
        if row.path_class != "fast":
            continue
        reads, hits = sum(row.served.values()), row.served.get("cache", 0.0)
        display += reads
        display_hits += hits
        if row.endpoint == "product.get":
            product, product_hits = reads, hits
    return product, product_hits, display, display_hits


async def load_mix(app_urls: list[str], seconds: int, users: int, window_s: int = 15) -> MixResult:
    """Run the standard locust mix and read, from the instances' own metrics, what it did:
    overall, and window by window (the cache's warm-up curve)."""
    before = await scrape(app_urls)
    started = time.monotonic()
    reports = LOAD_REPORTS.glob("*_stats.csv")
    previous_reports = set(reports)
    proc = await asyncio.create_subprocess_exec(
        str(OPS_LOAD), "-t", f"{seconds}s", "-u", str(users),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    windows: list[HitWindow] = []
    previous = before
    wait = asyncio.ensure_future(proc.wait())
    while True:
        done, _ = await asyncio.wait({wait}, timeout=window_s)
        now = await scrape(app_urls)
        product, product_hits, display, display_hits = _hits(merge(dict(now), previous, sign=-1.0))
        if display:
            windows.append(
                HitWindow(
                    ends_at_s=time.monotonic() - started,
                    product_reads=product,
                    product_hit=product_hits / product if product else 0.0,
                    display_reads=display,
                    display_hit=display_hits / display,
                )
            )
        previous = now
        if done:
            break
    exit_code = wait.result()
    if windows and windows[-1].display_reads < windows[0].display_reads / 3:
        windows.pop()  # the stub after locust stopped: too few reads to say anything
    overall = merge(await scrape(app_urls), before, sign=-1.0)
    _rows, summary = build_rows(overall)
    _product, _product_hits, display, display_hits = _hits(overall)
    return MixResult(
        seconds=seconds,
        display_reads=summary["display_reads"],
        primary_per_1000=summary["primary_reads_per_1000_display"] or 0.0,
        cache_hit=display_hits / display if display else 0.0,
        locust_exit=exit_code,
        windows=windows,
        latencies=_locust_latencies(set(LOAD_REPORTS.glob("*_stats.csv")) - previous_reports),
    )


def _locust_latencies(reports: set[Path]) -> dict[str, tuple[float, float, float]]:
    """Per request name: p50 and p99 (ms) and throughput, from the run's locust stats CSV."""
    if not reports:
        return {}
    with max(reports).open(newline="") as f:
        return {
            row["Name"]: (float(row["50%"]), float(row["99%"]), float(row["Requests/s"]))
            for row in csv.DictReader(f)
            if row["Name"] != "Aggregated" and row["Request Count"] != "0"
        }


# ------------------------------------------------------------------------- invalidation


async def invalidation_latency(admin_dsn: str, redis_url: str, *, listen: bool, writes: int) -> list[float]:
    """Seconds from a write's COMMIT to its ``product:<id>`` key being gone, one relay running."""
    dsn = await scratch_database(admin_dsn, "catalog_bench_invalidation")
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    relay = OutboxRelay("bench", dsn, redis, RelaySettings(poll_interval_s=1.0, listen=listen), CacheSettings())
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    conn = await asyncpg.connect(dsn)
    latencies: list[float] = []
    try:
        while not relay.connected:  # noqa: ASYNC110  (the relay exposes a flag, not an event)
            await asyncio.sleep(0.01)
        for i in range(1, writes + 1):
            await redis.set(product_key(i), b"1|stale")
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO outbox (event_type, aggregate_id, payload) VALUES ('product.updated', $1, $2::jsonb)",
                    i, f'{{"id": {i}, "version": 2, "category_id": 1, "old_category_id": 1}}',
                )  # fmt: skip
                await conn.execute("SELECT pg_notify('outbox', '')")
            committed = time.perf_counter()
            while await redis.exists(product_key(i)):  # noqa: ASYNC110  (polling Redis is the measurement)
                await asyncio.sleep(0.0002)
            latencies.append(time.perf_counter() - committed)
            # Writes arrive at random moments relative to the relay's poll clock.
            await asyncio.sleep(random.uniform(0, 0.02 if listen else 1.0))
    finally:
        stop.set()
        await task
        await conn.close()
        await redis.flushdb()
        await redis.aclose()
        await drop_database(admin_dsn, "catalog_bench_invalidation")
    return latencies


# ------------------------------------------------------------------------ seed and search


# What shoppers type, by share of searches: one noun, material + noun, adjective + noun, one broad word
# (an adjective, brand or material: tens of thousands of matches), a quoted phrase, and a typo (a letter
# dropped, swapped or replaced; sometimes after a correct word), which full text misses and the typo
# fallback answers.
SEARCH_SHAPES = (
    ("noun", 0.30),
    ("material noun", 0.15),
    ("adjective noun", 0.10),
    ("broad word", 0.10),
    ("phrase", 0.10),
    ("typo", 0.25),
)


def _typo(word: str, rng: random.Random) -> str:
    cut = rng.randrange(1, len(word) - 2)
    roll = rng.random()
    if roll < 0.5:
        return word[:cut] + word[cut + 1 :]
    if roll < 0.75:
        return word[:cut] + word[cut + 1] + word[cut] + word[cut + 2 :]
    return word[:cut] + rng.choice("aeiourstln") + word[cut + 1 :]


def search_queries(count: int, rng: random.Random) -> list[tuple[str, str]]:
    """``count`` searches as ``(shape, text)``, shapes in the proportions of SEARCH_SHAPES."""
    nouns = [n.lower() for nouns in CATEGORIES.values() for n in nouns]
    long_nouns = [n for n in nouns if len(n) > 5]
    broad = [w.lower() for w in (*ADJECTIVES, *BRANDS, *MATERIALS)]
    shapes, weights = zip(*SEARCH_SHAPES, strict=True)
    out = []
    for shape in rng.choices(shapes, weights, k=count):
        if shape == "noun":
            text = rng.choice(nouns)
        elif shape == "material noun":
            text = f"{rng.choice(MATERIALS)} {rng.choice(nouns)}".lower()
        elif shape == "adjective noun":
            text = f"{rng.choice(ADJECTIVES)} {rng.choice(nouns)}".lower()
        elif shape == "broad word":
            text = rng.choice(broad)
        elif shape == "phrase":
            text = f'"{rng.choice(MATERIALS)} {rng.choice(nouns)}"'.lower()
        else:
            typo = _typo(rng.choice(long_nouns), rng)
            text = f"{rng.choice(MATERIALS).lower()} {typo}" if rng.random() < 0.2 else typo
        out.append((shape, text))
    return out


@dataclass(frozen=True, slots=True)
class ShapeTimings:
    shape: str
    searches: int
    p50_ms: float
    p99_ms: float
    fuzzy: int  # answered by the typo fallback


@dataclass(frozen=True, slots=True)
class SeedSearchResult:
    products: int
    seed_seconds: float
    search_p50_ms: float
    search_p99_ms: float
    searches: int
    shapes: list[ShapeTimings]


async def seed_and_search(admin_dsn: str, products: int, searches: int) -> SeedSearchResult:
    """Seed ``products`` with COPY into a scratch database, then time uncached searches on it.

    Each search is the service's one statement (full text, typo fallback when it finds nothing),
    timed at the client: planning, execution, the round trip and decoding a page of 20 (+1) rows.
    """
    name = "catalog_bench_seed"
    dsn = await scratch_database(admin_dsn, name)
    try:
        started = time.perf_counter()
        await seed(dsn, products=products, categories=64, show_progress=True)
        seed_seconds = time.perf_counter() - started
        conn = await asyncpg.connect(dsn)
        try:
            by_shape: dict[str, list[float]] = {shape: [] for shape, _ in SEARCH_SHAPES}
            fuzzy: dict[str, int] = dict.fromkeys(by_shape, 0)
            for shape, q in search_queries(searches, random.Random(5)):
                t0 = time.perf_counter()
                rows = await conn.fetch(CATALOG_Q["search_products"], q, None, None, 21, None)
                by_shape[shape].append(time.perf_counter() - t0)
                fuzzy[shape] += bool(rows) and rows[0]["mode"] == "fuzzy"
        finally:
            await conn.close()
    finally:
        await drop_database(admin_dsn, name)
    timings = [t for values in by_shape.values() for t in values]
    return SeedSearchResult(
        products=products,
        seed_seconds=seed_seconds,
        search_p50_ms=statistics.median(timings) * 1000,
        search_p99_ms=percentile(timings, 0.99) * 1000,
        searches=len(timings),
        shapes=[
            ShapeTimings(
                shape, len(values), statistics.median(values) * 1000, percentile(values, 0.99) * 1000, fuzzy[shape]
            )
            for shape, values in by_shape.items()
            if values
        ],
    )


def rss_mib(pids: list[int]) -> dict[int, float]:
    """Resident memory of processes, in MiB (from /proc)."""
    out = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                out[pid] = int(line.split()[1]) / 1024
    return out


def app_pids(run_dir: str) -> list[int]:
    pids = []
    for path in sorted(Path(run_dir).glob("data/pids/app-*.pid")):
        try:
            pids.append(int(path.read_text().split()[0]))
        except (OSError, ValueError):
            continue
    return pids

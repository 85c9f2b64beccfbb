"""``ops/bench``: the performance targets (README.md, "Try it"), measured on this machine in one run.

    ops/bench            # everything (about 15 minutes)
    ops/bench http       # cached GET vs bare Litestar, raw ASGI, /healthz, Litestar's response cache
    ops/bench mix        # primary queries per 1000 display reads; the cache hit ratio's warm-up curve
                         # and its steady state under the load mix
    ops/bench invalidation   # commit -> key gone, with LISTEN and polling only
    ops/bench outbox     # drain rate of 100,000 pending events
    ops/bench seed       # 1M products with COPY, then uncached search p50/p99 on them, per query shape

Throughput is compared as ratios measured in the same run (absolute numbers are noise on a
shared 2-core machine); every figure is a median of several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from devtools.bench.ceilings import HELLO_PATH
from devtools.bench.http import Probe, Variant, app_env_from_stack, measure, median
from devtools.stack import PROJECT_DIR

PRODUCT = "/products/1"


def _line(label: str, value: str, verdict: str = "") -> None:
    print(f"  {label:<58} {value:>18}  {verdict}")


def _verdict(ok: bool, detail: str) -> str:
    return ("meets" if ok else "MISSES") + f" ({detail})"


def bench_http(args: argparse.Namespace) -> None:
    base_env = app_env_from_stack(str(args.run_dir))
    normal = Variant("catalog", "app.main:create_app", {})
    bare = Variant("bare-litestar", "devtools.bench.ceilings:bare_litestar", {}, ready_path=HELLO_PATH)
    raw = Variant("raw-asgi", "devtools.bench.ceilings:raw_asgi", {}, ready_path=HELLO_PATH)
    response_cache = Variant("litestar-cache", "devtools.bench.response_cache:create_app", {})
    primary_only = Variant(
        "primary-only",
        "app.main:create_app",
        {
            "CATALOG_REPLICA_DSNS": "",
            "CATALOG_REDIS_URL": "redis://127.0.0.1:1/0",
            "CATALOG_NEAR_CACHE_ENABLED": "false",
        },
    )
    redis_only = Variant("redis-only", "app.main:create_app", {"CATALOG_NEAR_CACHE_ENABLED": "false"})
    full_path = Variant("no-fast-lane", "app.main:create_app", {"CATALOG_NEAR_CACHE_FAST_LANE": "false"})
    plan = [
        Probe(raw, HELLO_PATH),
        Probe(bare, HELLO_PATH),
        Probe(normal, "/healthz"),
        Probe(normal, PRODUCT),
        Probe(normal, PRODUCT, ("If-None-Match: *",), "304"),
        Probe(full_path, PRODUCT),
        Probe(response_cache, f"/bench/response-cache{PRODUCT}"),
        Probe(redis_only, PRODUCT),
        Probe(primary_only, PRODUCT),
    ]
    print(f"HTTP (wrk: 1 thread, {args.connections} connections, {args.seconds}s x {args.runs} runs, medians; "
          "one uvicorn worker per variant, uvloop + httptools)")  # fmt: skip
    results = measure(plan, base_env, runs=args.runs, seconds=args.seconds, connections=args.connections)
    rps = {label: median(values) for label, values in results.items()}
    for label, value in rps.items():
        _line(label, f"{value:,.0f} req/s", "runs: " + ", ".join(f"{v:,.0f}" for v in results[label]))
    raw_rps = rps[f"raw-asgi {HELLO_PATH}"]
    bare_rps = rps[f"bare-litestar {HELLO_PATH}"]
    healthz = rps["catalog /healthz"]
    cached = rps[f"catalog {PRODUCT}"]
    revalidated = rps[f"catalog {PRODUCT} (304)"]
    litestar = rps[f"litestar-cache /bench/response-cache{PRODUCT}"]
    primary = rps[f"primary-only {PRODUCT}"]
    redis_rps = rps[f"redis-only {PRODUCT}"]
    _line("cached GET /products/{id} / bare Litestar handler", f"{cached / bare_rps:.2f}x",
          _verdict(cached >= bare_rps, ">= 1.0"))  # fmt: skip
    _line("cached GET /products/{id} / raw ASGI", f"{cached / raw_rps:.2f}x")
    _line("cached GET /products/{id} / /healthz", f"{cached / healthz:.2f}x", _verdict(cached >= healthz, ">= 1.0"))
    _line("304 revalidation / bare Litestar handler", f"{revalidated / bare_rps:.2f}x")
    full = rps[f"no-fast-lane {PRODUCT}"]
    _line("near-cache hit through the full path (lane off) / bare Litestar", f"{full / bare_rps:.2f}x")
    _line("/healthz (full Litestar stack) / bare Litestar handler", f"{healthz / bare_rps:.2f}x")
    _line("bare Litestar handler / raw ASGI", f"{bare_rps / raw_rps:.2f}x")
    _line(
        "cached GET / Litestar ResponseCache+RedisStore",
        f"{cached / litestar:.2f}x",
        _verdict(cached >= litestar, ">= 1.0"),
    )
    _line("cached GET / primary-only GET", f"{cached / primary:.2f}x")
    _line("Redis-only cache (near cache off) / bare Litestar handler", f"{redis_rps / bare_rps:.2f}x")


def bench_mix(args: argparse.Namespace) -> None:
    from devtools.bench.scenarios import app_pids, load_mix, rss_mib

    urls = [u for u in os.environ.get("CATALOG_APP_URLS", "").split(",") if u]
    print(f"Load mix (ops/load, {args.mix_seconds}s, {args.users} users, locust FastHttpUser; metrics diffed "
          f"every {args.window}s)")  # fmt: skip
    result = asyncio.run(load_mix(urls, args.mix_seconds, args.users, args.window))
    _line("display reads", f"{result.display_reads:,.0f}")
    _line("primary queries per 1000 display reads", f"{result.primary_per_1000:.1f}",
          _verdict(result.primary_per_1000 <= 10, "<= 10"))  # fmt: skip
    _line("cache hit ratio, whole run (display reads)", f"{result.cache_hit:.1%}")
    for window in result.windows:
        _line(f"  warm-up: window ending at {window.ends_at_s:3.0f} s (product pages / all display)",
              f"{window.product_hit:.1%} / {window.display_hit:.1%}")  # fmt: skip
    steady = result.steady
    if steady is not None:
        flat = "flat" if result.converged else "still rising: run longer (--mix-seconds)"
        _line(f"steady state (last window; {flat}): product pages", f"{steady.product_hit:.1%}",
              _verdict(steady.product_hit >= 0.95, ">= 95%"))  # fmt: skip
        _line("steady state (last window): all display reads", f"{steady.display_hit:.1%}",
              _verdict(steady.display_hit >= 0.90, ">= 90%"))  # fmt: skip
    for name in ("/products/{id}", "/search/products", "/categories/{id}/products"):
        if name in result.latencies:
            p50, p99, rate = result.latencies[name]
            verdict = _verdict(p99 <= 50, "p99 <= 50 ms") if name == "/search/products" else ""
            _line(f"through nginx: {name} p50 / p99 ({rate:,.0f} req/s)", f"{p50:.0f} / {p99:.0f} ms", verdict)
    _line("locust exit code (failures or RYW violations -> 1)", str(result.locust_exit))
    for pid, mib in rss_mib(app_pids(str(args.run_dir))).items():
        _line(f"app instance RSS after the mix (pid {pid})", f"{mib:.0f} MiB", _verdict(mib < 200, "< 200 MiB"))


def bench_invalidation(args: argparse.Namespace) -> None:
    from devtools.bench.scenarios import invalidation_latency, percentile

    redis_url = args.redis_url.rsplit("/", 1)[0] + "/15"
    print("Invalidation latency (COMMIT -> product:<id> gone; one relay; poll interval 1 s)")
    for listen, writes in ((True, args.writes), (False, max(40, args.writes // 5))):
        values = asyncio.run(invalidation_latency(args.dsn, redis_url, listen=listen, writes=writes))
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        mode = "LISTEN/NOTIFY" if listen else "polling only"
        target = 20 if listen else 1050
        _line(
            f"{mode} (n={len(values)}) p50 / p99",
            f"{p50:.1f} / {p99:.1f} ms",
            _verdict(p99 <= target, f"p99 <= {target} ms"),
        )


def bench_outbox(args: argparse.Namespace) -> None:
    from devtools.bench.outbox import bench_outbox as run
    from devtools.bench.outbox import median_rate

    redis_url = args.redis_url.rsplit("/", 1)[0] + "/15"
    print(f"Outbox drain ({args.events:,} pending events, batches of {args.batch}, {args.runs} runs)")
    results = asyncio.run(
        run(args.dsn, redis_url, events=args.events, products=args.events, runs=args.runs, batch=args.batch)
    )
    one = median_rate(results[1])
    _line("1 relay: events/s", f"{one:,.0f}", _verdict(one >= 80_000, ">= 80,000/s"))
    for relays, runs in results.items():
        if relays > 1:
            rate = median_rate(runs)
            _line(f"{relays} relays: events/s", f"{rate:,.0f}", f"({rate / one:.2f}x one relay)")


def bench_seed(args: argparse.Namespace) -> None:
    from devtools.bench.scenarios import seed_and_search

    print(f"Seed {args.products:,} products (COPY) and search them (uncached, {args.searches} queries)")
    result = asyncio.run(seed_and_search(args.dsn, args.products, args.searches))
    rate = result.products / result.seed_seconds
    _line("seed time", f"{result.seed_seconds:.1f} s", _verdict(result.seed_seconds <= 60, "<= 60 s"))
    _line("seed rate", f"{rate:,.0f} products/s")
    _line(f"search p50 / p99 (n={result.searches})", f"{result.search_p50_ms:.1f} / {result.search_p99_ms:.1f} ms",
          _verdict(result.search_p99_ms <= 25, "p99 <= 25 ms"))  # fmt: skip
    for shape in result.shapes:
        fuzzy = f", {shape.fuzzy} by the typo fallback" if shape.fuzzy else ""
        _line(f"  {shape.shape} (n={shape.searches}{fuzzy})", f"{shape.p50_ms:.1f} / {shape.p99_ms:.1f} ms")


SECTIONS = {"http": bench_http, "mix": bench_mix, "invalidation": bench_invalidation, "outbox": bench_outbox,
            "seed": bench_seed}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ops/bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sections", nargs="*", metavar="section", help=f"one or more of: {', '.join(SECTIONS)} (default: all)"
    )
    parser.add_argument("--dsn", default=os.environ.get("CATALOG_PRIMARY_DSN"))
    parser.add_argument("--redis-url", default=os.environ.get("CATALOG_REDIS_URL"))
    parser.add_argument("--run-dir", type=Path, default=PROJECT_DIR / ".run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--mix-seconds", type=int, default=240, help="long enough for the hit ratio to flatten")
    parser.add_argument("--window", type=int, default=30, help="seconds per window of the hit-ratio curve")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=1000)
    args = parser.parse_args(argv)
    if not args.dsn or not args.redis_url:
        parser.error("needs the stack: run `ops/dev up` first (it writes .run/stack.env)")
    unknown = set(args.sections) - {*SECTIONS, "all"}
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    sections = list(SECTIONS) if not args.sections or "all" in args.sections else args.sections
    for name in sections:
        SECTIONS[name](args)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

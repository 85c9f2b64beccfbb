"""ops/bench: the performance targets (README.md, "Try it"), measured in one run.

  ops/bench                 # every section (about 15 minutes)
  ops/bench http            # cached GET vs bare Litestar, raw ASGI, /healthz,
                            # Litestar's response cache (needs wrk)
  ops/bench mix             # primary queries per 1000 display reads; the cache
                            # hit ratio's warm-up curve and its steady state
  ops/bench invalidation    # commit -> key gone, with LISTEN and polling only
  ops/bench outbox          # drain rate of 100,000 pending events
  ops/bench seed            # 1M products with COPY, then uncached search
                            # p50/p99 on them, per query shape
  ops/bench writes          # the write side on a durable Postgres of its own:
                            # admin updates vs the no-NOTIFY ceiling, checkout,
                            # a flash sale on one product (needs no stack)
  ops/bench outbox seed --json    # the figures as one JSON object

Throughput is compared as ratios measured in the same run (absolute numbers
are noise on a shared 2-core machine); every figure is a median of several
runs. Flags may come before or after the sections. The stack's addresses come
from --dsn/--redis-url, else the environment (ops/bench fills what is not
exported from .run/stack.env). wrk is installed (as root) only when the http
section runs.

Exit status: 0 the sections ran (a target missed is marked MISSES, it is not
an exit status); 1 the stack is unreachable or a section could not run;
2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import asyncpg
from redis.exceptions import RedisError

from app.admin_cli.args import bounded_int, global_flags, no_stack, tool_parser, unreachable
from app.core.logging import configure_logging
from app.core.settings import load_settings
from devtools.bench.ceilings import HELLO_PATH
from devtools.bench.http import Probe, Variant, app_env_from_stack, measure, median
from devtools.bench.report import Report
from devtools.stack import PROJECT_DIR

PRODUCT = "/products/1"


def _verdict(ok: bool, detail: str) -> str:
    return ("meets" if ok else "MISSES") + f" ({detail})"


def _ensure_wrk() -> None:
    """wrk for the http section: installed by ops/_bootstrap.sh as root, else a one-line error."""
    if shutil.which("wrk") is not None:
        return
    bootstrap = Path(__file__).resolve().parents[2] / "_bootstrap.sh"
    script = 'source "$1" && ensure_system_packages wrk'
    if subprocess.run(["bash", "-c", script, "bash", str(bootstrap)], check=False).returncode or not shutil.which(
        "wrk"
    ):
        raise RuntimeError("wrk is missing: install it with `sudo apt-get install wrk`")


def bench_http(args: argparse.Namespace, report: Report) -> None:
    _ensure_wrk()
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
    report.section("http", f"HTTP (wrk: 1 thread, {args.connections} connections, {args.seconds}s x {args.runs} "
                   "runs, medians; one uvicorn worker per variant, uvloop + httptools)")  # fmt: skip
    results = measure(plan, base_env, runs=args.runs, seconds=args.seconds, connections=args.connections)
    rps = {label: median(values) for label, values in results.items()}
    report.figures(requests_per_second=rps, runs=results)
    for label, value in rps.items():
        report.line(label, f"{value:,.0f} req/s", "runs: " + ", ".join(f"{v:,.0f}" for v in results[label]))
    raw_rps = rps[f"raw-asgi {HELLO_PATH}"]
    bare_rps = rps[f"bare-litestar {HELLO_PATH}"]
    healthz = rps["catalog /healthz"]
    cached = rps[f"catalog {PRODUCT}"]
    revalidated = rps[f"catalog {PRODUCT} (304)"]
    litestar = rps[f"litestar-cache /bench/response-cache{PRODUCT}"]
    primary = rps[f"primary-only {PRODUCT}"]
    redis_rps = rps[f"redis-only {PRODUCT}"]
    report.line("cached GET /products/{id} / bare Litestar handler", f"{cached / bare_rps:.2f}x",
                _verdict(cached >= bare_rps, ">= 1.0"))  # fmt: skip
    report.line("cached GET /products/{id} / raw ASGI", f"{cached / raw_rps:.2f}x")
    report.line(
        "cached GET /products/{id} / /healthz", f"{cached / healthz:.2f}x", _verdict(cached >= healthz, ">= 1.0")
    )
    report.line("304 revalidation / bare Litestar handler", f"{revalidated / bare_rps:.2f}x")
    full = rps[f"no-fast-lane {PRODUCT}"]
    report.line("near-cache hit through the full path (lane off) / bare Litestar", f"{full / bare_rps:.2f}x")
    report.line("/healthz (full Litestar stack) / bare Litestar handler", f"{healthz / bare_rps:.2f}x")
    report.line("bare Litestar handler / raw ASGI", f"{bare_rps / raw_rps:.2f}x")
    report.line(
        "cached GET / Litestar ResponseCache+RedisStore",
        f"{cached / litestar:.2f}x",
        _verdict(cached >= litestar, ">= 1.0"),
    )
    report.line("cached GET / primary-only GET", f"{cached / primary:.2f}x")
    report.line("Redis-only cache (near cache off) / bare Litestar handler", f"{redis_rps / bare_rps:.2f}x")


def bench_mix(args: argparse.Namespace, report: Report) -> None:
    from devtools.bench.scenarios import app_pids, load_mix, rss_mib

    urls = [u for u in os.environ.get("CATALOG_APP_URLS", "").split(",") if u]
    if not urls:
        raise RuntimeError("no instances: CATALOG_APP_URLS is empty (`ops/dev up` writes it to .run/stack.env)")
    report.section("mix", f"Load mix (ops/load, {args.mix_seconds}s, {args.users} users, locust FastHttpUser; "
                   f"metrics diffed every {args.window}s)")  # fmt: skip
    result = asyncio.run(load_mix(urls, args.mix_seconds, args.users, args.window))
    report.figures(**dataclasses.asdict(result))
    report.line("display reads", f"{result.display_reads:,.0f}")
    report.line("primary queries per 1000 display reads", f"{result.primary_per_1000:.1f}",
                _verdict(result.primary_per_1000 <= 10, "<= 10"))  # fmt: skip
    report.line("cache hit ratio, whole run (display reads)", f"{result.cache_hit:.1%}")
    for window in result.windows:
        report.line(f"  warm-up: window ending at {window.ends_at_s:3.0f} s (product pages / all display)",
                    f"{window.product_hit:.1%} / {window.display_hit:.1%}")  # fmt: skip
    steady = result.steady
    if steady is not None:
        flat = "flat" if result.converged else "still rising: run longer (--mix-seconds)"
        report.line(f"steady state (last window; {flat}): product pages", f"{steady.product_hit:.1%}",
                    _verdict(steady.product_hit >= 0.95, ">= 95%"))  # fmt: skip
        report.line("steady state (last window): all display reads", f"{steady.display_hit:.1%}",
                    _verdict(steady.display_hit >= 0.90, ">= 90%"))  # fmt: skip
    for name in ("/products/{id}", "/search/products", "/categories/{id}/products"):
        if name in result.latencies:
            p50, p99, rate = result.latencies[name]
            verdict = _verdict(p99 <= 50, "p99 <= 50 ms") if name == "/search/products" else ""
            report.line(f"through nginx: {name} p50 / p99 ({rate:,.0f} req/s)", f"{p50:.0f} / {p99:.0f} ms", verdict)
    report.line("locust exit code (failures or RYW violations -> 1)", str(result.locust_exit))
    for pid, mib in rss_mib(app_pids(str(args.run_dir))).items():
        report.line(f"app instance RSS after the mix (pid {pid})", f"{mib:.0f} MiB", _verdict(mib < 200, "< 200 MiB"))


def bench_invalidation(args: argparse.Namespace, report: Report) -> None:
    from devtools.bench.scenarios import invalidation_latency, percentile
    from devtools.bench.scratch import scratch_postgres, scratch_redis

    report.section("invalidation", "Invalidation latency (COMMIT -> product:<id> gone; one relay; poll interval "
                   "1 s; a Postgres and a Redis of the bench's own)")  # fmt: skip
    for listen, writes in ((True, args.writes), (False, max(40, args.writes // 5))):
        with scratch_postgres(durable=False) as admin_dsn, scratch_redis() as redis_url:
            values = asyncio.run(invalidation_latency(admin_dsn, redis_url, listen=listen, writes=writes))
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        mode = "LISTEN/NOTIFY" if listen else "polling only"
        report.figures(**{"listen" if listen else "polling": {"n": len(values), "p50_ms": p50, "p99_ms": p99}})
        target = 20 if listen else 1050
        report.line(
            f"{mode} (n={len(values)}) p50 / p99",
            f"{p50:.1f} / {p99:.1f} ms",
            _verdict(p99 <= target, f"p99 <= {target} ms"),
        )


def bench_outbox(args: argparse.Namespace, report: Report) -> None:
    from devtools.bench.outbox import bench_outbox as run
    from devtools.bench.outbox import median_rate
    from devtools.bench.scratch import scratch_postgres, scratch_redis

    report.section("outbox", f"Outbox drain ({args.events:,} pending events, batches of {args.batch}, {args.runs} "
                   "runs; a Postgres and a Redis of the bench's own)")  # fmt: skip
    import uvloop

    with scratch_postgres(durable=False) as admin_dsn, scratch_redis() as redis_url:
        # On uvloop, as `catalog relay` and the instances run their relays.
        results = uvloop.run(
            run(admin_dsn, redis_url, events=args.events, products=args.events, runs=args.runs, batch=args.batch)
        )
    report.figures(runs_by_relays={str(n): [dataclasses.asdict(r) for r in runs] for n, runs in results.items()})
    one = median_rate(results[1])
    report.line("1 relay: events/s", f"{one:,.0f}", _verdict(one >= 80_000, ">= 80,000/s"))
    for relays, runs in results.items():
        if relays > 1:
            rate = median_rate(runs)
            report.line(f"{relays} relays: events/s", f"{rate:,.0f}", f"({rate / one:.2f}x one relay)")


def bench_seed(args: argparse.Namespace, report: Report) -> None:
    from devtools.bench.scenarios import seed_and_search

    report.section(
        "seed", f"Seed {args.products:,} products (COPY) and search them (uncached, {args.searches} queries)"
    )
    result = asyncio.run(seed_and_search(args.dsn, args.products, args.searches))
    report.figures(**dataclasses.asdict(result))
    rate = result.products / result.seed_seconds
    report.line("seed time", f"{result.seed_seconds:.1f} s", _verdict(result.seed_seconds <= 60, "<= 60 s"))
    report.line("seed rate", f"{rate:,.0f} products/s")
    search = f"{result.search_p50_ms:.1f} / {result.search_p99_ms:.1f} ms"
    report.line(f"search p50 / p99 (n={result.searches})", search, _verdict(result.search_p99_ms <= 25, "p99 <= 25 ms"))
    for shape in result.shapes:
        fuzzy = f", {shape.fuzzy} by the typo fallback" if shape.fuzzy else ""
        report.line(f"  {shape.shape} (n={shape.searches}{fuzzy})", f"{shape.p50_ms:.1f} / {shape.p99_ms:.1f} ms")


def bench_writes(args: argparse.Namespace, report: Report) -> None:
    import uvloop

    from devtools.bench.scratch import scratch_postgres, scratch_redis
    from devtools.bench.writes import CONCURRENCY, median_point, one_run, percentile

    report.section("writes", f"Writes on a durable Postgres of the bench's own (fsync, synchronous_commit, "
                   f"full_page_writes on; {args.write_seconds} s per point, {args.runs} runs, medians)")  # fmt: skip
    with scratch_postgres(durable=True) as admin_dsn, scratch_redis() as redis_url:
        runs = [
            # On uvloop, as the instances' write code runs under uvicorn.
            uvloop.run(one_run(admin_dsn, redis_url, products=10_000, seconds=args.write_seconds,
                                shoppers=args.shoppers, stock=args.stock, flash_concurrency=64, rotate=i))
            for i in range(args.runs)
        ]  # fmt: skip
    top = max(CONCURRENCY)
    updates = {mode: {n: median_point([r.updates[mode][n] for r in runs]) for n in CONCURRENCY}
               for mode in runs[0].updates}  # fmt: skip
    checkout = {n: median_point([r.checkout[n] for r in runs]) for n in CONCURRENCY}
    for n in CONCURRENCY:
        ceiling = updates["ceiling"][n]["tps"]
        service, in_txn = updates["service"][n], updates["notify_in_txn"][n]
        verdict = _verdict(service["tps"] >= 0.9 * ceiling, ">= 0.9x ceiling") if n == top else ""
        report.line(f"admin update, {n} writers: ceiling (no NOTIFY) tps", f"{ceiling:,.0f}")
        report.line(f"  NOTIFY in the transaction / ceiling (p99 {in_txn['p99_ms']:.1f} ms)",
                    f"{in_txn['tps'] / ceiling:.2f}x")  # fmt: skip
        report.line(f"  ProductWrites + doorbell / ceiling (p99 {service['p99_ms']:.1f} ms)",
                    f"{service['tps'] / ceiling:.2f}x", verdict)  # fmt: skip
    invalidation = [v for r in runs for v in r.invalidation_ms]
    p50, p99 = percentile(invalidation, 0.5), percentile(invalidation, 0.99)
    report.line(f"COMMIT -> product:<id> gone under {top} writers (n={len(invalidation)}) p50 / p99",
                f"{p50:.1f} / {p99:.1f} ms", _verdict(p99 <= 20, "p99 <= 20 ms"))  # fmt: skip
    for n in CONCURRENCY:
        point = checkout[n]
        ratio = point["tps"] / updates["ceiling"][n]["tps"]
        report.line(f"checkout, distinct products, {n} writers (p99 {point['p99_ms']:.1f} ms)",
                    f"{point['tps']:,.0f} tps", f"({ratio:.2f}x the update ceiling)")  # fmt: skip
    flashes = [r.flash for r in runs if r.flash is not None]
    alone = [r.flash_alone for r in runs if r.flash_alone is not None]
    rate = statistics.median(f.per_second for f in flashes)
    alone_rate = statistics.median(f.per_second for f in alone)
    flash_p99 = statistics.median(f.p99_ms for f in flashes)
    flash_p50 = statistics.median(f.p50_ms for f in flashes)
    everyone = flashes + alone
    exact = all(f.orders == f.stock == f.units_ordered and f.inventory_after == 0 and f.other == 0 for f in everyone)
    oversell = max(f.oversell for f in everyone)
    first = flashes[0]
    report.line(f"flash sale: {first.shoppers} shoppers, stock {first.stock}, {first.concurrency} at a time",
                "", "")  # fmt: skip
    report.line(f"  one transaction per checkout (p99 {statistics.median(f.p99_ms for f in alone):.0f} ms)",
                f"{alone_rate:,.0f} /s", f"({alone_rate / updates['ceiling'][top]['tps']:.2f}x the update ceiling)")
    report.line("  group commit (the service) / one per checkout", f"{rate / alone_rate:.1f}x",
                _verdict(rate >= 5 * alone_rate, ">= 5x"))  # fmt: skip
    report.line("  group commit: checkouts answered per second", f"{rate:,.0f} /s",
                f"({rate / updates['ceiling'][top]['tps']:.2f}x the update ceiling)")  # fmt: skip
    report.line("  group commit p50 / p99", f"{flash_p50:.1f} / {flash_p99:.1f} ms",
                _verdict(flash_p99 <= 100, "p99 <= 100 ms"))  # fmt: skip
    report.line("  orders == stock, every other shopper 409 out_of_stock", "yes" if exact else "NO",
                _verdict(exact, "exact"))  # fmt: skip
    report.line("  oversold units", str(oversell), _verdict(oversell == 0, "0"))
    report.figures(
        updates=updates,
        checkout=checkout,
        invalidation={"n": len(invalidation), "p50_ms": p50, "p99_ms": p99},
        flash_sale={"per_second": rate, "p50_ms": flash_p50, "p99_ms": flash_p99, "exact": exact,
                    "oversell": oversell, "one_transaction_per_checkout_per_second": alone_rate,
                    "over_one_per_checkout": rate / alone_rate,
                    "runs": [dataclasses.asdict(f) for f in flashes],
                    "runs_one_per_checkout": [dataclasses.asdict(f) for f in alone]},
        service_over_ceiling_at_64=updates["service"][top]["tps"] / updates["ceiling"][top]["tps"],
    )  # fmt: skip


SECTIONS = {"http": bench_http, "mix": bench_mix, "invalidation": bench_invalidation, "outbox": bench_outbox,
            "seed": bench_seed, "writes": bench_writes}  # fmt: skip
# Sections that bring their own servers (devtools/bench/scratch.py): they run without a stack.
STANDALONE = {"invalidation", "outbox", "writes"}


def parser() -> argparse.ArgumentParser:
    top = tool_parser("ops/bench", __doc__, global_flags())
    top.add_argument("sections", nargs="*", metavar="SECTION", help=f"some of: {', '.join(SECTIONS)} (default: all)")
    top.add_argument("--dsn", default=os.environ.get("CATALOG_PRIMARY_DSN"), help="($CATALOG_PRIMARY_DSN)")
    top.add_argument("--redis-url", default=os.environ.get("CATALOG_REDIS_URL"), help="($CATALOG_REDIS_URL)")
    top.add_argument("--run-dir", type=Path, default=PROJECT_DIR / ".run", help="the stack's (default: .run/)")
    number = {
        "--runs": (1, 50, 5, "runs per figure"),
        "--seconds": (1, 600, 5, "per wrk run"),
        "--connections": (1, 10_000, 32, "wrk connections"),
        "--mix-seconds": (10, 3600, 240, "long enough for the hit ratio to flatten"),
        "--window": (5, 600, 30, "seconds per window of the hit-ratio curve"),
        "--users": (1, 9999, 40, "locust users in the mix"),
        "--writes": (1, 100_000, 200, "writes timed for invalidation"),
        "--events": (1, 10_000_000, 100_000, "pending events to drain"),
        "--batch": (1, 1_000_000, 2_000, "events per relay batch"),
        "--products": (1, 10_000_000, 1_000_000, "products to seed"),
        "--searches": (1, 1_000_000, 1000, "searches timed after the seed"),
        "--write-seconds": (1, 600, 5, "per point of the writes section"),
        "--shoppers": (1, 100_000, 400, "flash-sale shoppers"),
        "--stock": (1, 100_000, 150, "flash-sale stock"),
    }
    for flag, (low, high, default, what) in number.items():
        top.add_argument(
            flag,
            type=bounded_int(low, high),
            default=default,
            metavar="N",
            help=f"{what} ({low:,}-{high:,}, default {default:,})",
        )
    return top


async def _preflight(dsn: str, redis_url: str) -> None:
    """Fail in a second, not minutes into a run, when the primary or Redis does not answer."""
    from redis.asyncio import Redis

    conn = await asyncpg.connect(dsn, timeout=5, server_settings={"application_name": "catalog.ops"})
    await conn.close()
    redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        await redis.ping()
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_intermixed_args(argv)  # flags before, between or after the sections
    args.json = getattr(args, "json", False)
    unknown = set(args.sections) - {*SECTIONS, "all"}
    if unknown:
        top.error(f"unknown section(s): {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    sections = list(SECTIONS) if not args.sections or "all" in args.sections else args.sections
    needs_stack = not set(sections) <= STANDALONE
    if needs_stack and (not args.dsn or not args.redis_url):
        return no_stack("ops/bench", "no primary DSN or Redis URL: pass --dsn and --redis-url, or export them")
    # The relays and apps the sections run in-process log to stderr, warnings only: stdout is the report.
    configure_logging(load_settings({}, log_level="warning", log_format="console"))
    report = Report(as_json=args.json)
    try:
        if needs_stack:
            asyncio.run(_preflight(args.dsn, args.redis_url))
    except (OSError, TimeoutError, asyncpg.PostgresError, RedisError) as exc:
        return unreachable("ops/bench", "the primary or Redis", exc)
    try:
        for name in sections:
            SECTIONS[name](args, report)
            if not args.json:
                print()
    except (OSError, asyncpg.PostgresError, RedisError) as exc:
        return unreachable("ops/bench", "the stack", exc)
    except RuntimeError as exc:
        print(f"ops/bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ops/bench: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(report.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

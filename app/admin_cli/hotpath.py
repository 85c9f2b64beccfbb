"""ops/hotpath: where is the system hot? The article's table, from live metrics.

  ops/hotpath [--window SECONDS] [--wide] [--json] [--urls URL,...]
              [--primary-dsn DSN] [--replica-dsns DSN,...] [--statements N]

Scrapes /metrics of every instance in --urls (default $CATALOG_APP_URLS) and,
when the DSNs are given, pg_stat_statements on the primary and replicas. Per
endpoint: requests and share of traffic, p50/p99, database time share, cache
hit %, where reads were served from; under the table, each endpoint's verdict,
route, path class and freshness promise (--wide: as columns); then each
replica (up, eligible, lag, the reads it answered) and the heaviest statements.

By default the figures are totals since the instances started; --window 30
shows only what happened during the next 30 seconds (two scrapes, subtracted).
The defaults come from the environment; ops/hotpath fills what is not exported
from .run/stack.env.

Exit status: 0 ok; 1 no instance could be scraped; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from app.admin_cli.args import bounded_float, bounded_int, global_flags, no_stack, tool_parser, unreachable
from app.admin_cli.hotpath_table import console_for, render
from app.admin_cli.replica_report import replica_rows
from app.contracts.policy import POLICIES, EndpointPolicy, PathClass

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def merge(into: Samples, other: Samples, sign: float = 1.0) -> Samples:
    for key, value in other.items():
        into[key] = into.get(key, 0.0) + sign * value
    return into


async def scrape_instances(urls: list[str]) -> tuple[list[Samples], dict[str, BaseException | str]]:
    """Each instance's samples, and why each one that did not answer could not be scraped."""
    async with httpx.AsyncClient(timeout=5) as client:
        responses = await asyncio.gather(*(client.get(f"{u}/metrics") for u in urls), return_exceptions=True)
    each: list[Samples] = []
    failed: dict[str, BaseException | str] = {}
    for url, response in zip(urls, responses, strict=True):
        if isinstance(response, BaseException):
            failed[url] = response
        elif response.status_code != 200:
            failed[url] = f"HTTP {response.status_code}"
        else:
            each.append(parse_metrics(response.text))
    return each, failed


async def scrape_each(urls: list[str]) -> list[Samples]:
    """Each instance's samples; an unreachable instance is reported on stderr and skipped."""
    each, failed = await scrape_instances(urls)
    for url, why in failed.items():
        print(f"ops/hotpath: could not scrape {url}: {why}", file=sys.stderr)
    return each


def total(each: list[Samples]) -> Samples:
    """The sum of every instance's samples."""
    out: Samples = {}
    for samples in each:
        merge(out, samples)
    return out


async def scrape(urls: list[str]) -> Samples:
    return total(await scrape_each(urls))


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus-style quantile from cumulative (le, count) buckets, linear within a bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    previous_le, previous_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return previous_le
            span = count - previous_count
            return previous_le + (le - previous_le) * ((rank - previous_count) / span if span else 0.0)
        previous_le, previous_count = le, count
    return previous_le


@dataclass
class Row:
    endpoint: str
    method: str
    path: str
    path_class: str
    freshness: str
    requests: float = 0.0
    share: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    seconds: float = 0.0
    db_seconds: float = 0.0
    db_share: float | None = None
    served: dict[str, float] = field(default_factory=dict)  # cache / replica / primary → count
    cache_hit: float | None = None
    verdict: str = ""


def _labels(key: tuple[str, tuple[tuple[str, str], ...]]) -> dict[str, str]:
    return dict(key[1])


def build_rows(samples: Samples) -> tuple[list[Row], dict[str, Any]]:  # noqa: PLR0912  (one pass over samples)
    rows = {p.name: Row(p.name, p.method, p.path, p.path_class.value, p.freshness) for p in POLICIES}
    by_route = {(p.method, p.template): p for p in POLICIES}
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    bucket_acc: dict[tuple[str, float], float] = defaultdict(float)
    for key, value in samples.items():
        name, labels = key[0], _labels(key)
        if name.startswith("litestar_request"):
            endpoint = by_route.get((labels.get("method", ""), labels.get("path", "")))
            if endpoint is None:
                continue
            row = rows[endpoint.name]
            if name == "litestar_requests_total":
                row.requests += value
            elif name == "litestar_request_duration_seconds_sum":
                row.seconds += value
            elif name == "litestar_request_duration_seconds_bucket":
                bucket_acc[(endpoint.name, float(labels["le"]))] += value
        elif name == "catalog_read_source_total" and labels.get("route") in rows:
            served = rows[labels["route"]].served
            served[labels["source"]] = served.get(labels["source"], 0.0) + value
        elif name == "catalog_db_query_seconds_sum" and labels.get("query") in rows:
            rows[labels["query"]].db_seconds += value
    for (endpoint_name, le), count in bucket_acc.items():
        buckets[endpoint_name].append((le, count))

    policies = {p.name: p for p in POLICIES}
    traffic = sum(r.requests for r in rows.values() if policies[r.endpoint].path_class is not PathClass.OPS)
    display_total = display_primary = 0.0
    for row in rows.values():
        endpoint = policies[row.endpoint]
        if traffic and endpoint.path_class is not PathClass.OPS:
            row.share = row.requests / traffic
        p50 = histogram_quantile(buckets[row.endpoint], 0.5)
        p99 = histogram_quantile(buckets[row.endpoint], 0.99)
        row.p50_ms = None if p50 is None else round(p50 * 1000, 2)
        row.p99_ms = None if p99 is None else round(p99 * 1000, 2)
        if row.seconds > 0 and row.db_seconds > 0:
            row.db_share = min(1.0, row.db_seconds / row.seconds)
        served_total = sum(row.served.values())
        if served_total:
            row.cache_hit = row.served.get("cache", 0.0) / served_total
        if endpoint.path_class is PathClass.FAST:
            display_total += served_total
            display_primary += row.served.get("primary", 0.0)
        row.verdict = verdict(endpoint, row)
    ordered = sorted(rows.values(), key=lambda r: (-r.requests, r.endpoint))
    summary = {
        "requests": traffic,
        "display_reads": display_total,
        "display_primary_share": (display_primary / display_total) if display_total else None,
        "primary_reads_per_1000_display": (1000 * display_primary / display_total) if display_total else None,
        "hottest": next((r.endpoint for r in ordered if policies[r.endpoint].path_class is not PathClass.OPS), None),
    }
    return ordered, summary


def verdict(endpoint: EndpointPolicy, row: Row) -> str:  # noqa: PLR0911  (a decision table)
    """One line an engineer can act on."""
    if not row.requests:
        return "idle"
    hot = row.share >= 0.15
    slow = row.p99_ms is not None and row.p99_ms > 100
    if endpoint.path_class is PathClass.OPS:
        return "ops"
    if endpoint.path_class in (PathClass.WRITE, PathClass.DECISION):
        note = "correctness path: primary by design"
        return f"{note}; slow tail (p99 {row.p99_ms:.0f} ms): check lock waits" if slow else note
    served = sum(row.served.values()) or 1.0
    primary_share = row.served.get("primary", 0.0) / served
    hit = row.cache_hit or 0.0
    if primary_share > 0.01:
        return f"{primary_share:.0%} of reads reach the primary: check replica lag and RYW traffic"
    if hot and hit < 0.9:
        return f"hot, cache hit {hit:.0%}: improve the read path (TTL, key shape, warmup)"
    if hot:
        return f"hot and absorbed: cache hit {hit:.0%}" + ("; slow tail: profile" if slow else "")
    if slow:
        return f"warm, p99 {row.p99_ms:.0f} ms: look at the query (db share {row.db_share or 0:.0%})"
    return f"warm, cache hit {hit:.0%}: fine as is"


async def top_statements(dsns: dict[str, str], limit: int) -> list[dict[str, Any]]:
    """The heaviest statements per server from pg_stat_statements (when the extension is there)."""
    import asyncpg

    out: list[dict[str, Any]] = []
    for server, dsn in dsns.items():
        try:
            conn = await asyncpg.connect(dsn, timeout=3, server_settings={"application_name": "catalog.ops"})
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"ops/hotpath: {server}: {exc}", file=sys.stderr)
            continue
        try:
            rows = await conn.fetch(
                """SELECT calls, total_exec_time, mean_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q
                   FROM pg_stat_statements
                   WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND query !~* 'pg_stat_statements|pg_last_wal|pg_current_wal'
                   ORDER BY total_exec_time DESC LIMIT $1""",
                limit,
            )
        except asyncpg.PostgresError as exc:
            print(f"ops/hotpath: {server}: pg_stat_statements unavailable ({exc})", file=sys.stderr)
            rows = []
        finally:
            await conn.close()
        out += [
            {"server": server, "calls": r["calls"], "total_ms": round(r["total_exec_time"], 1),
             "mean_ms": round(r["mean_exec_time"], 3), "query": r["q"]}
            for r in rows
        ]  # fmt: skip
    return out


async def run(args: argparse.Namespace) -> int:
    urls = [u.strip() for u in args.urls.split(",") if u.strip()]
    instances, failed = await scrape_instances(urls)
    if not instances:  # an all-zero table would look like an idle service
        first = next(iter(failed.values()), None)
        return unreachable(
            "ops/hotpath", f"any instance ({', '.join(urls)})", first if isinstance(first, Exception) else None
        )
    for url, why in failed.items():
        print(f"ops/hotpath: could not scrape {url}: {why}", file=sys.stderr)
    samples = total(instances)
    if args.window:
        await asyncio.sleep(args.window)
        instances = await scrape_each(urls)  # the gauges as they are now
        samples = merge(total(instances), samples, sign=-1.0)
    rows, summary = build_rows(samples)
    replicas = replica_rows(instances, samples)
    dsns: dict[str, str] = {}
    if args.primary_dsn:
        dsns["primary"] = args.primary_dsn
    for i, dsn in enumerate(d for d in (args.replica_dsns or "").split(",") if d.strip()):
        dsns[f"replica-{i + 1}"] = dsn.strip()
    statements = await top_statements(dsns, args.statements) if dsns and args.statements else []
    if args.json:
        endpoints, replica_list = [asdict(r) for r in rows], [asdict(r) for r in replicas]
        report = {"endpoints": endpoints, "summary": summary, "replicas": replica_list, "statements": statements}
        print(msgspec.json.encode(report).decode())
    else:
        render(rows, summary, replicas, statements, console=console_for(wide=args.wide), wide=args.wide)
    return 0


def parser() -> argparse.ArgumentParser:
    top = tool_parser("ops/hotpath", __doc__, global_flags())
    env = os.environ.get
    top.add_argument("--urls", default=env("CATALOG_APP_URLS", ""), help="instances to scrape ($CATALOG_APP_URLS)")
    top.add_argument("--primary-dsn", default=env("CATALOG_PRIMARY_DSN"), help="($CATALOG_PRIMARY_DSN)")
    top.add_argument("--replica-dsns", default=env("CATALOG_REPLICA_DSNS"), help="($CATALOG_REPLICA_DSNS)")
    top.add_argument(
        "--window", type=bounded_float(0, 3600), default=0.0, help="count the next N seconds only (0-3600)"
    )
    top.add_argument("--statements", type=bounded_int(0, 100), default=5, help="top statements (0-100; 0: none)")
    top.add_argument("--wide", action="store_true", help="route, class, freshness and verdict as columns")
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    args.json = getattr(args, "json", False)
    if not args.urls.strip(","):
        return no_stack("ops/hotpath", "no instances: pass --urls or export CATALOG_APP_URLS")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("ops/hotpath: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

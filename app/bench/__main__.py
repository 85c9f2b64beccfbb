"""``ops/bench``: performance measured on this machine, reported as rates and ratios.

Subcommands: ``outbox`` (drain rate of the relay).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from rich.console import Console
from rich.table import Table


def _outbox(args: argparse.Namespace) -> int:
    from app.bench.outbox import bench_outbox, median_rate

    redis_url = args.redis_url.rsplit("/", 1)[0] + "/15"  # a database of its own
    results = asyncio.run(
        bench_outbox(args.dsn, redis_url, events=args.events, products=args.products, runs=args.runs, batch=args.batch)
    )
    table = Table("relays", "events", "runs (events/s)", "median events/s", title="outbox drain")
    for relays, runs in results.items():
        table.add_row(
            str(relays), f"{args.events:,}", ", ".join(f"{r.rate:,.0f}" for r in runs), f"{median_rate(runs):,.0f}"
        )
    Console().print(table)
    best = max(median_rate(runs) for runs in results.values())
    target = 20_000
    verdict = "meets" if best >= target else "MISSES"
    print(f"target >= {target:,} events/s: {verdict} ({best / target:.2f}x of target)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ops/bench", description=__doc__)
    parser.add_argument("--dsn", default=os.environ.get("CATALOG_PRIMARY_DSN"))
    parser.add_argument("--redis-url", default=os.environ.get("CATALOG_REDIS_URL"))
    sub = parser.add_subparsers(dest="command", required=True)
    outbox = sub.add_parser("outbox", help="drain N pending outbox events; events/s with 1 and 2 relays")
    outbox.add_argument("--events", type=int, default=100_000)
    outbox.add_argument("--products", type=int, default=100_000, help="distinct products the events touch")
    outbox.add_argument("--runs", type=int, default=3)
    outbox.add_argument("--batch", type=int, default=2_000)
    outbox.set_defaults(func=_outbox)
    args = parser.parse_args(argv)
    if not args.dsn or not args.redis_url:
        parser.error("needs the stack: run `ops/dev up` first (it writes .run/stack.env)")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

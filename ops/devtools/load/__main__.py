"""ops/load: the standard load mix (tests/load/locustfile.py) through nginx,
headless and bounded.

  ops/load [-t 60s] [-u 40] [-r 10] [--peak] [--json] [-- LOCUST OPTIONS...]

Reads CATALOG_URL and CATALOG_PRIMARY_DSN (exported, else .run/stack.env).
Reports: .run/load/<timestamp>_{stats,failures,...}.csv and .html. Options
after `--` go to locust as they are (`ops/load -- --help` lists them).

Exit status: 0 no failure and no read-your-writes violation; 1 there were,
or the stack is unreachable; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncpg
import httpx

from app.admin_cli.args import bounded_float, bounded_int, global_flags, tool_parser, unreachable
from devtools.load.universe import keep_written, live_ids, write_ids
from devtools.stack import PROJECT_DIR

TOOL = "ops/load"
_DURATION = re.compile(r"^([1-9][0-9]*)([smh]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def duration(text: str) -> str:
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: use a duration such as 30s, 5m or 1h")
    if int(match.group(1)) * _SECONDS[match.group(2)] > 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: at most 24h")
    return text


def parser() -> argparse.ArgumentParser:
    top = tool_parser(TOOL, __doc__, global_flags())
    top.add_argument("-t", "--run-time", type=duration, default="60s", help="how long (default 60s; at most 24h)")
    top.add_argument(
        "-u", "--users", type=bounded_int(1, 9999), default=40, help="simulated users (1-9,999, default 40)"
    )
    top.add_argument("-r", "--spawn-rate", type=bounded_float(0.1, 1000), default=10, help="users started per second")
    top.add_argument("--peak", action="store_true", help="ramp, hold, spike, recover (tests/load/peak_shape.py)")
    top.add_argument("-H", "--host", default=argparse.SUPPRESS, help="base URL (default: $CATALOG_URL)")
    top.add_argument("locust", nargs=argparse.REMAINDER, help="after --: options for locust itself")
    return top


async def catalog_size(dsn: str) -> tuple[list[int], int]:
    """The live products' ids and the highest category id."""
    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        categories = await conn.fetchval("SELECT max(id) FROM categories")
    finally:
        await conn.close()
    return await live_ids(dsn), int(categories or 0)


def summary(stats_csv: Path) -> dict[str, object]:
    routes = []
    with stats_csv.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            routes.append(
                {
                    "method": row["Type"],
                    "name": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "p50_ms": float(row["50%"] or 0),
                    "p99_ms": float(row["99%"] or 0),
                    "rps": round(float(row["Requests/s"] or 0), 1),
                }
            )
    return {"routes": routes}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    extra = args.locust[1:] if args.locust[:1] == ["--"] else args.locust
    host = getattr(args, "host", None) or os.environ.get("CATALOG_URL")
    dsn = os.environ.get("CATALOG_PRIMARY_DSN")
    if not host or not dsn:
        print(
            f"{TOOL}: no stack: run `ops/dev up` (it writes .run/stack.env), "
            "or export CATALOG_URL and CATALOG_PRIMARY_DSN",
            file=sys.stderr,
        )
        return 1
    try:
        httpx.get(f"{host}/healthz", timeout=3).raise_for_status()
        products, categories = asyncio.run(catalog_size(dsn))
    except (httpx.HTTPError, OSError, asyncpg.PostgresError) as exc:
        return unreachable(TOOL, f"the stack at {host}", exc)
    if not products:
        print(f"{TOOL}: the catalog has no live products to load (`ops/dev up` seeds a fresh one)", file=sys.stderr)
        return 1
    files = "tests/load/locustfile.py" + (",tests/load/peak_shape.py" if args.peak else "")
    shape = [] if args.peak else ["-t", args.run_time, "-u", str(args.users), "-r", f"{args.spawn_rate:g}"]
    reports = PROJECT_DIR / ".run" / "load"
    reports.mkdir(parents=True, exist_ok=True)
    stamp = reports / time.strftime("%Y%m%d-%H%M%S")
    command = [
        str(Path(sys.executable).parent / "locust"), "-f", files, "--headless", "-H", host, *shape,
        "--csv", str(stamp), "--html", f"{stamp}.html", "--only-summary", "--stop-timeout", "5", *extra,
    ]  # fmt: skip
    # The ids the mix draws from: the live products, kept current while locust runs.
    ids_file = Path(f"{stamp}_ids.txt")
    write_ids(ids_file, products)
    env = {
        **os.environ,
        "CATALOG_LOAD_IDS_FILE": str(ids_file),
        "CATALOG_LOAD_PRODUCTS": str(max(products)),
        "CATALOG_LOAD_CATEGORIES": str(categories),
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_DIR / "ops"), os.environ.get("PYTHONPATH")) if p),
    }
    stop = threading.Event()
    refresher = keep_written(dsn, ids_file, stop)
    try:
        result = subprocess.run(
            command, cwd=PROJECT_DIR, env=env, check=False, stdout=sys.stderr if args.json else None
        )
    except KeyboardInterrupt:
        print(f"{TOOL}: interrupted", file=sys.stderr)
        return 130
    finally:
        stop.set()
        refresher.join(timeout=10)
    if args.json:
        stats = Path(f"{stamp}_stats.csv")
        report = summary(stats) if stats.exists() else {"routes": []}
        print(json.dumps({**report, "exit_status": result.returncode, "reports": str(stamp)}, indent=2))
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

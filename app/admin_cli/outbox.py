"""ops/outbox: inspect and nudge the outbox on the primary.

  ops/outbox status | tail [-f]
  ops/outbox retry [--dry-run] | purge --older-than 24h [--dry-run]

Flags may come before or after the command; --json everywhere. The primary's
DSN: --dsn, else $CATALOG_PRIMARY_DSN (filled from .run/stack.env when it is
not exported). retry and purge change data: --dry-run shows what they would
do; they stop after --limit events (retry) or --max-seconds (purge).

Exit status: 0 ok; 1 the primary is unreachable, or a purge stopped at its
time bound; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from rich.console import Console
from rich.table import Table

from app.admin_cli.args import bounded_float, bounded_int, global_flags, no_stack, tool_parser, unreachable
from app.admin_cli.quarantine import show_quarantine
from app.core.db import init_connection
from app.core.settings import CacheSettings
from app.core.sql import queries
from app.invalidation.retention import purge_processed_within

Q = queries("outbox")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"24h"``, ``"7d"`` → seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number with s, m, h or d, e.g. 24h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value))


def _print_json(value: Any) -> None:
    print(msgspec.json.encode(value, enc_hook=_encode).decode())


async def _connect(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        dsn, server_settings={"application_name": "catalog.ops"}
    )
    await init_connection(conn)
    return conn


async def outbox_status(conn: asyncpg.Connection[asyncpg.Record], failing_limit: int = 20) -> dict[str, Any]:
    """Pending, oldest pending age, failing events and recent throughput, overall and per event type."""
    by_type = [dict(r) for r in await conn.fetch(Q["status_by_type"])]
    failing = [dict(r) for r in await conn.fetch(Q["failing_events"], failing_limit)]
    return {
        "pending": sum(r["pending"] for r in by_type),
        "oldest_pending_age_seconds": round(max((r["oldest_pending_age_seconds"] for r in by_type), default=0.0), 3),
        "failing": sum(r["failing"] for r in by_type),
        "processed_last_minute": sum(r["processed_last_minute"] for r in by_type),
        "processed_last_hour": sum(r["processed_last_hour"] for r in by_type),
        "by_event_type": by_type,
        "failing_events": failing,
        "failing_events_listed": len(failing),  # the oldest; "failing" says how many there are
        # Broke the event contract: filed with the reason, nothing applied (ops/outbox quarantine).
        "quarantined": int(await conn.fetchval(Q["quarantined_count"])),
    }


def _show_status(status: dict[str, Any], console: Console) -> None:
    summary = Table("pending", "oldest pending", "failing", "quarantined", "done 1 min", "done 1 h", title="outbox")
    summary.add_row(
        str(status["pending"]),
        f"{status['oldest_pending_age_seconds']:.1f} s",
        str(status["failing"]),
        str(status["quarantined"]),
        str(status["processed_last_minute"]),
        str(status["processed_last_hour"]),
    )
    console.print(summary)
    if status["quarantined"]:
        console.print("  events outside the contract: `ops/outbox quarantine` lists them", highlight=False)
    if status["by_event_type"]:
        types = Table("event type", "pending", "failing", "1 min", "1 h", "oldest pending", title="by event type")
        for r in status["by_event_type"]:
            types.add_row(
                r["event_type"],
                str(r["pending"]),
                str(r["failing"]),
                str(r["processed_last_minute"]),
                str(r["processed_last_hour"]),
                f"{r['oldest_pending_age_seconds']:.1f} s",
            )
        console.print(types)
    shown = status["failing_events"]
    if shown:
        # One event per entry, its error on a line of its own: readable at 80 columns and in a pipe.
        more = status["failing"] - len(shown)
        title = f"failing events: the oldest {len(shown)} of {status['failing']}" if more > 0 else "failing events"
        console.print(title, highlight=False, markup=False)
        width = max(40, console.width - 4)
        for r in shown:
            console.print(
                f"  #{r['id']} {r['event_type']} product={r['aggregate_id']} attempts={r['attempts']} "
                f"next {r['next_attempt_at']:%H:%M:%S}",
                highlight=False,
                markup=False,
            )
            error = " ".join((r["last_error"] or "").split())
            error = error[: width - 1] + "…" if len(error) > width else error
            console.print(f"    {error}", highlight=False, markup=False)
        if more > 0:
            hint = f"  … {more} more: `ops/outbox status --failing {status['failing']}` shows them"
            console.print(hint, highlight=False, markup=False)


async def _tail(conn: asyncpg.Connection[asyncpg.Record], args: argparse.Namespace, console: Console) -> None:
    last_id = 0
    deadline = time.monotonic() + args.for_seconds if args.for_seconds else None
    first = True
    while True:
        rows = await conn.fetch(Q["recent_events"], last_id, args.limit if first else 10_000)
        first = False
        for r in rows:
            last_id = r["id"]
            if args.json:
                _print_json(dict(r))
            else:
                state = (
                    f"done by {r['processed_by']}"
                    if r["processed_at"]
                    else (f"FAILING x{r['attempts']}: {r['last_error']}" if r["attempts"] else "pending")
                )
                # Plain text: a relay name or an error message may hold "[...]", which is not markup.
                console.print(
                    f"{r['created_at']:%H:%M:%S.%f} #{r['id']} {r['event_type']} product={r['aggregate_id']} "
                    f"v{r['payload'].get('version')} [{state}]",
                    highlight=False,
                    markup=False,
                )
        if not args.follow or (deadline is not None and time.monotonic() >= deadline):
            return
        await asyncio.sleep(args.interval)


async def run(args: argparse.Namespace) -> int:
    console = Console()
    conn = await _connect(args.dsn)
    try:
        if args.command == "status":
            status = await outbox_status(conn, args.failing)
            if args.json:
                _print_json(status)
            else:
                _show_status(status, console)
        elif args.command == "tail":
            await _tail(conn, args, console)
        elif args.command == "quarantine":
            await show_quarantine(conn, args, console, _print_json)
        elif args.command == "retry":
            return await _retry(conn, args, console)
        elif args.command == "purge":
            return await _purge(conn, args, console)
    finally:
        await conn.close()
    return 0


async def _retry(conn: asyncpg.Connection[asyncpg.Record], args: argparse.Namespace, console: Console) -> int:
    failing = int(await conn.fetchval(Q["failing_count"]))
    if args.dry_run:
        would = min(failing, args.limit)
        _print_json({"failing": failing, "would_retry": would, "dry_run": True}) if args.json else console.print(
            f"dry run: {failing} failing events; retry would make the oldest {would} due now", highlight=False
        )
        return 0
    retried = int((await conn.execute(Q["retry_failing"], args.limit)).split()[-1])
    left = max(0, failing - retried)
    if args.json:
        _print_json({"retried": retried, "failing_not_retried": left})
    else:
        more = f"; {left} more failing (run again, or --limit)" if left else ""
        console.print(f"{retried} failing events are due now{more}", highlight=False)
    return 0


async def _purge(conn: asyncpg.Connection[asyncpg.Record], args: argparse.Namespace, console: Console) -> int:
    older = f"older than {args.older_than:.0f} s"
    preview = await conn.fetchrow(Q["purge_preview"], float(args.older_than))
    assert preview is not None
    if args.dry_run:
        found = {"batches": int(preview["batches"]), "events": int(preview["events"]), "dry_run": True}
        _print_json(found) if args.json else console.print(
            f"dry run: would delete {found['events']} processed events ({found['batches']} batches) {older}",
            highlight=False,
        )
        return 0
    started = time.monotonic()
    last_report = started
    total_events = int(preview["events"])

    step = max(1, total_events // 10)
    next_report = step

    def progress(events: int, statements: int) -> None:
        # On stderr, every 10% of what there was to delete or every second, whichever comes first.
        nonlocal last_report, next_report
        now = time.monotonic()
        if args.json or (events < next_report and now - last_report < 1.0):
            return
        last_report, next_report = now, (events // step + 1) * step
        line = f"  purged {events} of {total_events} events ({statements} statements, {now - started:.1f} s)"
        print(line, file=sys.stderr, flush=True)

    purged = await purge_processed_within(
        conn, args.older_than, args.batch_size, max_seconds=args.max_seconds, on_statement=progress
    )
    seconds = round(time.monotonic() - started, 2)
    if args.json:
        _print_json(
            {"deleted": purged.events, "statements": purged.statements, "complete": purged.complete, "seconds": seconds}
        )
    elif purged.complete:
        console.print(f"deleted {purged.events} processed events {older} in {seconds:.1f} s", highlight=False)
    else:
        console.print(
            f"stopped after --max-seconds {args.max_seconds:.0f}: deleted {purged.events} processed events {older}; "
            "more are left, run it again",
            highlight=False,
        )
    return 0 if purged.complete else 1


def parser() -> argparse.ArgumentParser:
    common = global_flags()
    common.add_argument(
        "--dsn", default=argparse.SUPPRESS, help="primary DSN (default: $CATALOG_PRIMARY_DSN, else .run/stack.env's)"
    )
    top = tool_parser("ops/outbox", __doc__, common)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = sub.add_parser("status", parents=[common], help="pending, oldest pending age, failing events, throughput")
    status.add_argument(
        "--failing", type=bounded_int(1, 10_000), default=20, help="list up to this many failing events (default 20)"
    )
    tail = sub.add_parser("tail", parents=[common], help="recent events; --follow for new ones")
    tail.add_argument("--limit", type=bounded_int(1, 10_000), default=20, help="events to show first (1-10,000)")
    tail.add_argument("-f", "--follow", action="store_true", help="then print new events as they come")
    tail.add_argument("--interval", type=bounded_float(0.1, 60), default=1.0, help="seconds between polls (0.1-60)")
    tail.add_argument(
        "--for", dest="for_seconds", type=bounded_float(0.1, 86_400), help="stop following after this many seconds"
    )
    quarantine = sub.add_parser("quarantine", parents=[common], help="events outside the contract, with the reason")
    quarantine.add_argument("--limit", type=bounded_int(1, 10_000), default=20, help="the newest (1-10,000)")
    retry = sub.add_parser("retry", parents=[common], help="make failing events due now (the oldest --limit)")
    retry.add_argument(
        "--limit", type=bounded_int(1, 1_000_000), default=10_000, help="at most this many (default 10,000)"
    )
    retry.add_argument("--dry-run", action="store_true", help="say how many it would retry; change nothing")
    purge = sub.add_parser("purge", parents=[common], help="delete processed events older than a duration")
    purge.add_argument("--older-than", type=parse_duration, required=True, help="e.g. 24h, 30m, 7d")
    purge.add_argument(
        "--batch-size", type=bounded_int(1, 100_000), default=10_000, help="events per statement (1-100,000)"
    )
    purge.add_argument(
        "--max-seconds", type=bounded_float(1, 86_400), default=600, help="stop after this long (default 600)"
    )
    purge.add_argument("--dry-run", action="store_true", help="say how many it would delete; change nothing")
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    args.json = getattr(args, "json", False)
    args.dsn = getattr(args, "dsn", None) or os.environ.get("CATALOG_PRIMARY_DSN")
    if args.command == "purge":
        # Amnesia recovery re-applies processed batches younger than the fence TTL: keep them.
        floor = int(os.environ.get("CATALOG_CACHE_FENCE_TTL_S") or CacheSettings().fence_ttl_s)
        if args.older_than < floor:
            top.error(f"--older-than must be at least the cache fence TTL ({floor} s): recovery replays newer batches")
    if not args.dsn:
        return no_stack("ops/outbox", "no primary DSN: pass --dsn or export CATALOG_PRIMARY_DSN")
    try:
        return asyncio.run(run(args))
    except (OSError, asyncpg.PostgresError) as exc:
        return unreachable("ops/outbox", "the primary", exc)
    except KeyboardInterrupt:
        print("ops/outbox: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

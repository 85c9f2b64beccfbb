"""``ops/outbox``: inspect and nudge the outbox. ``status | tail | retry | purge``, each with ``--json``."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from app.admin_cli.args import bounded_int, unreachable
from app.core.db import init_connection
from app.core.sql import queries
from app.invalidation.retention import purge_processed

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
    }


def _show_status(status: dict[str, Any], console: Console) -> None:
    summary = Table("pending", "oldest pending", "failing", "processed 1 min", "processed 1 h", title="outbox")
    summary.add_row(
        str(status["pending"]),
        f"{status['oldest_pending_age_seconds']:.1f} s",
        str(status["failing"]),
        str(status["processed_last_minute"]),
        str(status["processed_last_hour"]),
    )
    console.print(summary)
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
    if status["failing_events"]:
        failing = Table("id", "type", "product", "attempts", "next attempt", "last error", title="failing events")
        failing.columns[-1].no_wrap = True
        failing.columns[-1].overflow = "ellipsis"
        for r in status["failing_events"]:
            failing.add_row(
                str(r["id"]),
                r["event_type"],
                str(r["aggregate_id"]),
                str(r["attempts"]),
                r["next_attempt_at"].strftime("%H:%M:%S"),
                escape((r["last_error"] or "")[:80]),
            )
        console.print(failing)


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
            status = await outbox_status(conn)
            if args.json:
                _print_json(status)
            else:
                _show_status(status, console)
        elif args.command == "tail":
            await _tail(conn, args, console)
        elif args.command == "retry":
            count = int((await conn.execute(Q["retry_failing"])).split()[-1])
            if args.json:
                _print_json({"retried": count})
            else:
                console.print(f"{count} failing events are due now")
        elif args.command == "purge":
            deleted = await purge_processed(conn, args.older_than, args.batch_size)
            _print_json({"deleted": deleted}) if args.json else console.print(
                f"deleted {deleted} processed events older than {args.older_than:.0f} s"
            )
    finally:
        await conn.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ops/outbox", description=__doc__)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("CATALOG_PRIMARY_DSN"),
        help="primary DSN (default: $CATALOG_PRIMARY_DSN, from .run/stack.env)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="pending, oldest pending age, failing events, throughput")
    status.add_argument("--json", action="store_true")
    tail = sub.add_parser("tail", help="recent events; --follow for new ones")
    tail.add_argument("--limit", type=bounded_int(1, 10_000), default=20)
    tail.add_argument("-f", "--follow", action="store_true")
    tail.add_argument("--interval", type=float, default=1.0)
    tail.add_argument("--for", dest="for_seconds", type=float, help="stop following after this many seconds")
    tail.add_argument("--json", action="store_true")
    retry = sub.add_parser("retry", help="make every failing event due now")
    retry.add_argument("--json", action="store_true")
    purge = sub.add_parser("purge", help="delete processed events older than a duration")
    purge.add_argument("--older-than", type=parse_duration, required=True, help="e.g. 24h, 30m, 7d")
    purge.add_argument("--batch-size", type=bounded_int(1, 100_000), default=10_000, help="events per statement")
    purge.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("no DSN: pass --dsn or run `ops/dev up` (which writes .run/stack.env)")
    try:
        return asyncio.run(run(args))
    except (OSError, asyncpg.PostgresError) as exc:
        return unreachable("ops/outbox", "the primary", exc)


if __name__ == "__main__":
    raise SystemExit(main())

"""ops/outbox quarantine: the events a relay filed because their payload breaks the contract."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import asyncpg
from rich.console import Console

from app.core.sql import queries

Q = queries("outbox")


async def show_quarantine(
    conn: asyncpg.Connection[asyncpg.Record],
    args: argparse.Namespace,
    console: Console,
    print_json: Callable[[Any], None],
) -> None:
    """The newest quarantined events: id, type, who filed it when, the reason, the payload."""
    rows = [dict(r) for r in await conn.fetch(Q["quarantined_events"], args.limit)]
    if args.json:
        print_json({"quarantined": rows})
        return
    if not rows:
        console.print("no quarantined events", highlight=False)
        return
    width = max(40, console.width - 4)
    for r in rows:
        console.print(f"#{r['event_id']} {r['event_type']} by {r['quarantined_by']} at {r['quarantined_at']:%H:%M:%S}",
                      highlight=False, markup=False)  # fmt: skip
        for raw in (r["reason"], r["payload"]):
            text = " ".join(raw.split())
            shown = text[: width - 1] + "…" if len(text) > width else text
            console.print(f"    {shown}", highlight=False, markup=False)

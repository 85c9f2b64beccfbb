"""How ``ops/hotpath`` prints its report: a table that fits 80 columns, then what explains it.

One line per endpoint, numbers first, named by its policy (``product.get``); the verdict, the
path class and the freshness promise follow under the table, one endpoint per line, so a narrow
terminal or a pipe never folds a cell into a stripe. ``--wide`` adds them as columns instead.
Endpoint names, verdicts and SQL are data: printed as text, never read as rich markup.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from app.admin_cli.replica_report import ReplicaRow, render_replicas
from app.contracts.policy import PathClass

if TYPE_CHECKING:
    from app.admin_cli.hotpath import Row

SOURCES = ("cache", "replica", "primary")
_TYPED = re.compile(r"\{(\w+):\w+\}")


def console_for(*, wide: bool = False) -> Console:
    """A terminal's own width; in a pipe, $COLUMNS, else 80 (160 with ``--wide``), never rich's guess."""
    if sys.stdout.isatty():
        return Console()
    try:
        width = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        width = 160 if wide else 80
    return Console(width=max(40, min(width, 500)))


def _say(console: Console, text: str, *, dim: bool = False) -> None:
    """Plain text, wrapped at the console's width with its continuation lines indented."""
    lines = textwrap.wrap(text, width=console.width, subsequent_indent="    ", break_on_hyphens=False) or [""]
    for line in lines:
        console.print(line, style="dim" if dim else None, highlight=False, markup=False, soft_wrap=True)


def _route(row: Row) -> str:
    """``GET /products/{product_id}``: the route as the metrics label it, without parameter types."""
    return row.method + " " + _TYPED.sub(r"{\1}", row.path)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mix(row: Row) -> str:
    """cache/replica/primary shares of the reads, in percent: ``97/3/0``."""
    served = sum(row.served.values())
    if not served:
        return "-"
    return "/".join(f"{100 * row.served.get(s, 0.0) / served:.0f}" for s in SOURCES)


def endpoint_table(rows: list[Row], *, wide: bool = False) -> Table:
    """The endpoints that serve traffic (not ops), busiest first."""
    table = Table(
        title="hot path: where the traffic is, where it is served from",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 0),
    )
    table.add_column("endpoint", no_wrap=True)
    for header in ("requests", "share", "p50\nms", "p99\nms", "db\ntime", "cache\nhit", "served\nc/r/p %"):
        table.add_column(header, justify="right", no_wrap=True)
    if wide:
        for header in ("route", "class", "freshness", "verdict"):
            table.add_column(header, overflow="fold")
    for row in rows:
        if row.path_class == PathClass.OPS.value:
            continue
        cells: list[Text | str] = [
            Text(row.endpoint),
            f"{row.requests:,.0f}",
            _pct(row.share),
            _ms(row.p50_ms),
            _ms(row.p99_ms),
            _pct(row.db_share),
            _pct(row.cache_hit),
            _mix(row),
        ]
        if wide:
            cells += [Text(_route(row)), Text(row.path_class), Text(row.freshness), Text(row.verdict)]
        table.add_row(*cells)
    return table


def render(
    rows: list[Row],
    summary: dict[str, Any],
    replicas: list[ReplicaRow],
    statements: list[dict[str, Any]],
    *,
    console: Console,
    wide: bool = False,
) -> None:
    """The whole report: endpoints, what each verdict says, replicas, heaviest statements."""
    console.print(endpoint_table(rows, wide=wide))
    _say(console, "served c/r/p: % of reads from the cache / a replica / the primary", dim=True)
    share = summary["display_primary_share"]
    per_1000 = "" if share is None else f" ({summary['primary_reads_per_1000_display']:.1f} per 1000)"
    _say(console, f"hottest: {summary['hottest']}")
    reads = f"display reads: {summary['display_reads']:,.0f}"
    _say(console, f"{reads}, served by the primary: {_pct(share)}{per_1000}")
    if not wide:
        console.print()
        served = [r for r in rows if r.path_class != PathClass.OPS.value]
        for row in served:
            if row.requests:
                _say(console, f"{row.endpoint}: {row.verdict}")
                _say(console, f"    {_route(row)} ({row.path_class}); freshness: {row.freshness}", dim=True)
        idle = [r.endpoint for r in served if not r.requests]
        if idle:
            _say(console, f"idle: {', '.join(idle)}", dim=True)
    if replicas:
        console.print()
        render_replicas(console, replicas)
    if statements:
        console.print()
        _say(console, "heaviest statements (pg_stat_statements)")
        room = max(20, console.width - 4)
        for s in statements:
            figures = f"{s['calls']:,} calls, {s['total_ms']:,.0f} ms in all, {s['mean_ms']:.3f} ms each"
            _say(console, f"  {s['server']}: {figures}")
            query = s["query"] if len(s["query"]) <= room else s["query"][: room - 1] + "…"
            _say(console, f"    {query}", dim=True)

"""One row per fault: what the load saw, what was left behind, and the verdict.

The verdict is computed here, once, from the measured numbers, so the table, ``--json`` and the
tests all judge a fault the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


class Row(msgspec.Struct, kw_only=True):
    """The measurements of one fault phase (counts cover the whole phase: baseline, fault, after)."""

    fault: str
    display_reads: int = 0
    display_ok: int = 0
    writes_ok: int = 0
    writes_refused: int = 0  # 503 with Retry-After: an honest "not now"
    writes_failed: int = 0  # any other 5xx, or no answer at all
    writes_rejected: int = 0  # 4xx other than a checkout's 409 (e.g. nginx's 429, a 412): not judged, shown
    writes_retried: int = 0  # answer lost mid-request, sent once more with its Idempotency-Key / If-Match
    reads_retried: int = 0  # connection broke mid-answer, the GET sent once more
    server_errors: int = 0  # 5xx other than 503, on any request
    ryw_checked: int = 0
    ryw_refused: int = 0
    ryw_violations: int = 0
    stale: int = 0
    drained_s: float | None = None
    recovery_s: float | None = None
    display_exempt: str | None = None  # why this fault may fail display reads, when it may
    problems: dict[str, int] = msgspec.field(default_factory=dict)  # "<kind> <status>" -> count
    notes: list[str] = msgspec.field(default_factory=list)
    failures: list[str] = msgspec.field(default_factory=list)  # extra failed checks (quiesce, unprocessed events)
    reasons: list[str] = msgspec.field(default_factory=list)  # filled by judge(): why the verdict is FAIL
    ok: bool = False


def judge(row: Row) -> Row:
    """Set ``reasons`` and ``ok``: every display read served (unless exempt), no 5xx but honest 503s,
    no read-your-writes violation, nothing stale, the outbox drained within the bound.
    """
    reasons: list[str] = []
    if row.display_ok < row.display_reads and row.display_exempt is None:
        reasons.append(f"display reads {_percent(row.display_ok, row.display_reads)}")
    if row.writes_failed:
        reasons.append(f"{row.writes_failed} writes failed")
    if row.server_errors:
        reasons.append(f"{row.server_errors}x 5xx")
    if row.ryw_violations:
        reasons.append(f"{row.ryw_violations} RYW")
    if row.stale:
        reasons.append(f"{row.stale} stale")
    if row.drained_s is None:
        reasons.append("outbox not drained")
    reasons.extend(row.failures)
    row.reasons = reasons
    row.ok = not reasons
    return row


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _percent(ok: int, total: int) -> str:
    """Rounded down, so 7,680 of 7,681 reads shows as 99.9%, never as 100.0%."""
    return f"{math.floor(1000 * ok / total) / 10:.1f}%" if total else "-"


def render(rows: list[Row], console: Console) -> None:
    """The table (one line per fault, fits 80 columns), then what explains each row.

    Fault names, notes and error messages are data: printed as text, never read as rich markup.
    """
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 0))
    headers = ("fault", "reads", "ok", "writes\nok/503/fail", "5xx", "RYW", "stale", "drain\ns", "recov\ns")
    for header in headers:
        table.add_column(header, justify="left" if header == "fault" else "right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for row in rows:
        exempt = "*" if row.display_exempt is not None and row.display_ok < row.display_reads else ""
        table.add_row(
            Text(row.fault),
            f"{row.display_reads:,}",
            _percent(row.display_ok, row.display_reads) + exempt,
            f"{row.writes_ok:,}/{row.writes_refused}/{row.writes_failed}",
            str(row.server_errors),
            str(row.ryw_violations),
            str(row.stale),
            _seconds(row.drained_s),
            _seconds(row.recovery_s),
            "[green]ok[/]" if row.ok else "[red]FAIL[/]",
        )
    console.print(table)
    console.print("drain, recov: seconds from the recover action; * not judged (see below)", style="dim")
    for row in rows:
        lines = [f"FAIL: {'; '.join(row.reasons)}"] if row.reasons else []
        if row.display_exempt is not None and row.display_ok < row.display_reads:
            lines.append(f"* display reads not judged: {row.display_exempt}")
        if row.problems:
            top = sorted(row.problems.items(), key=lambda kv: -kv[1])[:6]
            lines.append("errors: " + ", ".join(f"{n}x {kind}" for kind, n in top))
        if row.writes_rejected:
            lines.append(f"{row.writes_rejected} writes rejected with a 4xx")
        if row.reads_retried:
            lines.append(f"{row.reads_retried} reads lost their connection mid-answer and were sent again")
        if row.writes_retried:
            lines.append(
                f"{row.writes_retried} writes lost their answer mid-request and were sent again"
                " (Idempotency-Key / If-Match make that safe)"
            )
        if row.ryw_refused:
            lines.append(f"{row.ryw_refused} own-write reads refused with 503 ({row.ryw_checked} checked)")
        lines.extend(row.notes)
        for line in lines:
            console.print(Text.assemble("  ", (row.fault, "bold"), f": {line}"), highlight=False, soft_wrap=True)


def render_ha(rows: list[Any], console: Console) -> None:
    """The HA drill's table (rows are ``devtools.drill.ha.HARow``): what Patroni's decisions cost."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1))
    headers = ("fault", "mode", "reads ok", "5xx", "acked", "lost", "unavail\ns", "stale", "leader")
    for header in headers:
        table.add_column(header, justify="left" if header in ("fault", "mode", "leader") else "right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for row in rows:
        lost = str(row.acknowledged_lost) + ("" if row.loss_judged else "*")
        table.add_row(
            Text(row.fault), row.mode[:5], _percent(row.display_ok, row.display_reads), str(row.server_errors),
            f"{row.acknowledged:,}", lost, _seconds(row.unavailable_s), str(row.stale),
            Text(f"{row.leader_before or '-'}>{row.leader_after or '-'}"),
            "[green]ok[/]" if row.ok else "[red]FAIL[/]",
        )  # fmt: skip
    console.print(table)
    console.print("unavail: longest stretch without an acknowledged write; * counted, not judged", style="dim")
    for row in rows:
        lines = [f"FAIL: {'; '.join(row.reasons)}"] if row.reasons else []
        if row.problems:
            top = sorted(row.problems.items(), key=lambda kv: -kv[1])[:6]
            lines.append("load errors: " + ", ".join(f"{n}x {kind}" for kind, n in top))
        lines.extend(row.notes)
        for line in lines:
            console.print(Text.assemble("  ", (row.fault, "bold"), f": {line}"), highlight=False, soft_wrap=True)


def to_json(rows: Sequence[Row]) -> bytes:
    return msgspec.json.encode({"rows": rows, "ok": all(r.ok for r in rows)})

"""The replicas part of ``ops/hotpath``: each replica as the instances see it, and its share of reads.

The gauges (up, lag, eligible) are per instance and are not summed: a replica is shown as up on
``2/3`` instances, with the largest lag any of them measured. Reads are summed over instances
(``catalog_replica_reads_total``: the display reads that missed the caches and a replica answered).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class ReplicaRow:
    replica: str
    instances: int = 0  # instances that report this replica
    up: int = 0  # ... of which see it answer
    eligible: int = 0  # ... of which route display reads to it
    lag_s: float | None = None  # the largest lag an instance that sees it up measured
    reads: float = 0.0
    read_share: float | None = None  # of all reads the replicas answered


def _gauges(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["replica"]: value for (metric, labels), value in samples.items() if metric == name}


def replica_rows(per_instance: list[Samples], totals: Samples) -> list[ReplicaRow]:
    """One row per replica from each instance's latest scrape (gauges) and the summed counters."""
    rows: dict[str, ReplicaRow] = {}
    for samples in per_instance:
        up = _gauges(samples, "catalog_replica_up")
        lag = _gauges(samples, "catalog_replica_lag_seconds")
        eligible = _gauges(samples, "catalog_replica_eligible")
        for name, value in up.items():
            row = rows.setdefault(name, ReplicaRow(name))
            row.instances += 1
            row.up += value == 1
            row.eligible += eligible.get(name) == 1
            measured = lag.get(name)
            if value == 1 and measured is not None and measured >= 0:
                row.lag_s = measured if row.lag_s is None else max(row.lag_s, measured)
    for name, value in _gauges(totals, "catalog_replica_reads_total").items():
        rows.setdefault(name, ReplicaRow(name)).reads = value
    total_reads = sum(r.reads for r in rows.values())
    for row in rows.values():
        row.read_share = row.reads / total_reads if total_reads else None
    return sorted(rows.values(), key=lambda r: r.replica)


def render_replicas(console: Console, rows: list[ReplicaRow]) -> None:
    from rich.table import Table

    # The title as a line of its own: a table narrower than its title would fold it.
    title = "replicas: as the instances see them, and the display reads each answered"
    console.print(title, highlight=False, markup=False)
    table = Table()
    for column in ("replica", "up", "eligible", "lag", "reads", "share"):
        table.add_column(column)
    for row in rows:
        lag = "-" if row.lag_s is None else "inf" if row.lag_s == float("inf") else f"{row.lag_s * 1000:.0f} ms"
        share = "-" if row.read_share is None else f"{row.read_share:.0%}"
        table.add_row(
            row.replica, f"{row.up}/{row.instances}", f"{row.eligible}/{row.instances}", lag, f"{row.reads:,.0f}", share
        )
    console.print(table)

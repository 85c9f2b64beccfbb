"""Our own Prometheus metrics (request RED metrics come from Litestar's Prometheus plugin)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

READ_SOURCE = Counter(
    "catalog_read_source_total",
    "Display reads by route, where they were served from, and why.",
    ["route", "source", "reason"],
)
RYW_TOKENS_IGNORED = Counter(
    "catalog_ryw_tokens_ignored_total",
    "Read-your-writes cookies that were ignored, by reason.",
    ["reason"],
)
WRITES = Counter(
    "catalog_writes_total",
    "Committed admin writes by operation.",
    ["operation"],
)
DB_QUERY_SECONDS = Histogram(
    "catalog_db_query_seconds",
    "Database time per pool and named query.",
    ["pool", "query"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)

"""Every Prometheus metric the service declares, in one place. ``multiprocess_mode`` says how a
gauge combines across workers when ``PROMETHEUS_MULTIPROC_DIR`` is set.

The request RED metrics keep the names and labels of Litestar's Prometheus plugin (dashboards and
``ops/hotpath`` read them) but are recorded by our own middleware (``app/core/http.py``), whose
label children are resolved once per route instead of four times per request.
"""

from __future__ import annotations

import bisect
import collections
import functools
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

# ---------------------------------------------------------------- HTTP requests (per route template)
_HTTP_LABELS = ["method", "path", "status_code", "app_name"]
HTTP_REQUESTS = Counter("litestar_requests_total", "Total requests", _HTTP_LABELS)
HTTP_REQUEST_SECONDS = Histogram("litestar_request_duration_seconds", "Request duration, in seconds", _HTTP_LABELS)
HTTP_IN_PROGRESS = Gauge(
    "litestar_requests_in_progress",
    "Total requests currently in progress",
    _HTTP_LABELS,
    multiprocess_mode="livesum",
)
HTTP_ERRORS = Counter("litestar_requests_error_total", "Total errors in requests", _HTTP_LABELS)

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
    "Database time per pool (replica, primary-read, primary) and endpoint (policy name).",
    ["pool", "query"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)

OUTBOX_PENDING = Gauge("catalog_outbox_pending", "Outbox events not yet processed.", multiprocess_mode="max")
OUTBOX_OLDEST_AGE = Gauge(
    "catalog_outbox_oldest_pending_age_seconds", "Age of the oldest unprocessed event.", multiprocess_mode="max"
)
OUTBOX_PROCESSED = Counter("catalog_outbox_events_processed_total", "Outbox events applied to Redis.", ["event_type"])
OUTBOX_FAILED = Counter("catalog_outbox_events_failed_total", "Outbox event attempts that failed.", ["event_type"])
DOORBELL_RINGS = Counter(
    "catalog_doorbell_rings_total",
    "Committed writes that rang the outbox doorbell (app/core/doorbell.py).",
)
DOORBELL_NOTIFIES = Counter(
    "catalog_doorbell_notifies_total",
    "NOTIFYs the doorbell sent: rings coalesced into at most one per interval.",
)
OUTBOX_UNPARSED = Counter(
    "catalog_outbox_events_unparsed_total",
    "Outbox payloads outside the event contract (marked processed with nothing to apply).",
)
OUTBOX_BATCH_SIZE = Histogram(
    "catalog_outbox_batch_size",
    "Events per claimed batch.",
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 2000, 5000),
)
INVALIDATION_LATENCY = Histogram(
    "catalog_invalidation_latency_seconds",
    "From the outbox event's creation (in the write transaction) to its Redis work being done.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
CACHE_AMNESIA = Counter(
    "catalog_cache_amnesia_total",
    "Times a relay found Redis had lost keys and re-applied recent invalidations.",
)
CACHE_TIMELINE_CHANGES = Counter(
    "catalog_cache_timeline_changes_total",
    "Times a relay found the cache held another primary timeline's data and emptied it.",
)
RELAY_RECONNECTS = Counter("catalog_relay_reconnects_total", "Times the relay lost and re-opened its connection.")
CACHE_REQUESTS = Counter(
    "catalog_cache_requests_total",
    "Display-cache lookups and fills by key family and result (hit, miss, bypass, fill, fill-refused).",
    ["family", "result"],
)
RECOMMENDATION_FAILURES = Counter(
    "catalog_recommendation_failures_total", "Recommendation reads that failed and degraded to []."
)
CHECKOUTS = Counter(
    "catalog_checkouts_total",
    "Checkout attempts by outcome (ok, price_changed, out_of_stock, idempotent_replay, ...).",
    ["outcome"],
)

# ---------------------------------------------------------------- fast path infrastructure
BREAKER_OPEN = Gauge(
    "catalog_breaker_open", "1 while the breaker skips the dependency.", ["dependency"], multiprocess_mode="max"
)
NEAR_CACHE_ENTRIES = Gauge(
    "catalog_near_cache_entries", "Products held in this process's near cache.", multiprocess_mode="livesum"
)
NEAR_CACHE_BYTES = Gauge(
    "catalog_near_cache_bytes", "Bytes of product JSON held in the near cache.", multiprocess_mode="livesum"
)
PRIMARY_UP = Gauge(
    "catalog_primary_up",
    "1 while the primary answers this instance's monitor; 0 = degraded (reads from replicas, writes 503).",
    multiprocess_mode="min",
)
REPLICA_LAG = Gauge(
    "catalog_replica_lag_seconds", "Replica staleness as seen by this instance.", ["replica"], multiprocess_mode="max"
)
REPLICA_UP = Gauge(
    "catalog_replica_up", "1 when the replica answered the last poll.", ["replica"], multiprocess_mode="min"
)
REPLICA_READS = Counter(
    "catalog_replica_reads_total", "Display reads a replica answered (cache misses), by replica.", ["replica"]
)
REPLICA_ELIGIBLE = Gauge(
    "catalog_replica_eligible", "1 when display reads may use the replica.", ["replica"], multiprocess_mode="min"
)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """Exactly ``histogram.observe(v)`` for each value, with one increment per bucket, not per value.

    The relay observes one latency per event, 100,000 per drain of the benchmark; one ``observe``
    each was a tenth of the relay's time. This reaches into prometheus_client's Histogram
    (``_upper_bounds``, ``_buckets``, ``_sum``, as ``observe`` uses them); tests/unit/core/test_metrics.py
    compares it with ``observe``, so a version that changes them fails there, not in production.
    """
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]  # unannotated upstream
    bucket_of = functools.partial(bisect.bisect_left, histogram._upper_bounds)
    # The first bucket whose upper bound is >= the value, as observe's linear scan finds it.
    for index, count in collections.Counter(map(bucket_of, values)).items():
        histogram._buckets[index].inc(count)
    histogram._sum.inc(sum(values))

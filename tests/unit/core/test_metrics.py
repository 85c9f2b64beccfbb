"""``observe_many`` is ``observe`` per value: same buckets, count and sum, whatever the values."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from app.core.metrics import INVALIDATION_LATENCY, observe_many

VALUES = [0.0, 0.0005, 0.001, 0.0010001, 0.002, 0.07, 0.25, 0.2500001, 1.0, 29.9, 30.0, 31.0, 1e9, 0.003, 0.003]


def _samples(histogram: Histogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def _twins() -> tuple[Histogram, Histogram]:
    buckets = INVALIDATION_LATENCY._upper_bounds[:-1]  # the relay's own buckets
    one, many = CollectorRegistry(), CollectorRegistry()
    return (
        Histogram("latency", "per value", buckets=buckets, registry=one),
        Histogram("latency", "per batch", buckets=buckets, registry=many),
    )


@pytest.mark.parametrize("values", [VALUES, [], [5.0] * 1000, list(reversed(VALUES)) * 3])
def test_observe_many_is_observe_per_value(values: list[float]) -> None:
    each, batched = _twins()
    for value in values:
        each.observe(value)
    observe_many(batched, values)
    assert _samples(batched) == pytest.approx(_samples(each))
    assert _samples(batched)[("latency_count", ())] == len(values)


def test_a_labelled_parent_refuses_like_observe() -> None:
    labelled = Histogram("labelled", "x", ["kind"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="missing label values"):
        labelled.observe(1.0)
    with pytest.raises(ValueError, match="missing label values"):
        observe_many(labelled, [1.0])

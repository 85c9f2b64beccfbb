"""The invalidation plan of a batch: newest version per product, every list the batch touched."""

from __future__ import annotations

from app.contracts.events import ProductChanged, encode_event
from app.invalidation.plan import InvalidationPlan


def _event(product_id: int, version: int, category: int, old_category: int | None = None) -> dict[str, int]:
    return encode_event(
        ProductChanged(id=product_id, version=version, category_id=category, old_category_id=old_category or category)
    )


def test_only_the_newest_version_per_product_matters_in_any_order() -> None:
    plan = InvalidationPlan.of([_event(1, 3, 5), _event(1, 5, 5), _event(1, 4, 5), _event(2, 1, 6)])
    assert plan.versions == {1: 5, 2: 1}


def test_a_product_that_moved_invalidates_both_categories() -> None:
    plan = InvalidationPlan.of([_event(1, 2, category=7, old_category=3)])
    assert plan.categories == {3, 7}
    assert plan.lists


def test_payloads_outside_the_contract_change_nothing() -> None:
    plan = InvalidationPlan()
    assert not plan.add({"note": "not an event"})
    assert not plan.add(None)
    assert (plan.versions, plan.categories, plan.lists) == ({}, set(), False)
    assert plan.unparsed == 2, "counted, so the relay can say so"


def test_applying_a_plan_twice_is_the_same_plan() -> None:
    events = [_event(1, 2, 3), _event(4, 5, 6)]
    assert InvalidationPlan.of(events + events) == InvalidationPlan.of(events)

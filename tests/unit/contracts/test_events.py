"""The outbox event contract: what writers produce is what the relay parses, SQL included."""

from __future__ import annotations

import re

import msgspec
import pytest

from app.contracts.events import (
    ANNOUNCEMENT_MAX_BYTES,
    EventType,
    ProductChanged,
    encode_announcements,
    encode_event,
    parse_announcement,
    parse_event,
)
from app.core.sql import queries

FIELDS = {f.name for f in msgspec.structs.fields(ProductChanged)}


def test_an_encoded_event_parses_back_to_itself() -> None:
    event = ProductChanged(id=7, version=3, category_id=2, old_category_id=5)
    assert parse_event(encode_event(event)) == event
    assert parse_event(msgspec.json.encode(encode_event(event))) == event


@pytest.mark.parametrize(
    "payload",
    [
        {"id": 7, "version": 3, "category_id": 2},  # a required key missing
        {"id": "7", "version": 3, "category_id": 2, "old_category_id": 2},  # a string where an int belongs
        {"id": True, "version": 3, "category_id": 2, "old_category_id": 2},  # a bool is not an id
        [7, 3, 2, 2],
        None,
        b"{not json",
    ],
)
def test_payloads_outside_the_contract_are_refused(payload: object) -> None:
    assert parse_event(payload) is None


def test_extra_keys_from_a_newer_writer_are_tolerated() -> None:
    event = parse_event({"id": 1, "version": 2, "category_id": 3, "old_category_id": 3, "price_cents": 10})
    assert event == ProductChanged(id=1, version=2, category_id=3, old_category_id=3)


def test_checkout_sql_builds_exactly_the_contract() -> None:
    sql = queries("checkout")["insert_stock_events"]
    built = re.search(r"jsonb_build_object\((.*?)\)\s*\n", sql, re.DOTALL)
    assert built is not None, "checkout no longer builds its events with jsonb_build_object"
    keys = set(re.findall(r"'([a-z_]+)'\s*,", built.group(1)))
    assert keys == FIELDS
    # The event type is a parameter bound from EventType, not a literal the contract cannot see.
    assert not re.search(r"'product\.[a-z_]+'", sql)


def test_every_event_type_is_namespaced_under_product() -> None:
    assert all(t.value.startswith("product.") for t in EventType)


def test_announcements_stay_under_the_notify_limit_and_round_trip() -> None:
    versions = {product_id: product_id * 7 for product_id in range(1, 5_000)}
    payloads = encode_announcements(versions)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= ANNOUNCEMENT_MAX_BYTES for p in payloads)
    pairs = [pair for p in payloads for pair in parse_announcement(p)]
    assert dict(pairs) == versions


def test_malformed_announcement_items_are_skipped() -> None:
    assert parse_announcement("1:2,x:3,4:,5:6") == [(1, 2), (5, 6)]


def test_the_batch_commit_announces_in_the_same_query_and_takes_integers_only() -> None:
    from app.invalidation.batch import announce_and_commit

    assert announce_and_commit({}) == "COMMIT"
    sql = announce_and_commit({7: 3, 12: 1})
    assert sql.endswith("; COMMIT")
    assert "'7:3,12:1'" in sql
    with pytest.raises(ValueError, match="more than integers"):
        announce_and_commit({"7'); DROP TABLE products; --": 1})  # type: ignore[dict-item]

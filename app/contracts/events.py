"""The outbox event: what a write commits beside its row change, and what the relay reads back.

One contract for three parties (docs/adr/0008): the write path and checkout produce events (the
write path through :func:`encode_event`, checkout in SQL, ``insert_stock_events`` in
``sql/queries/checkout.sql``), the relay parses them with :func:`parse_event`. A test checks the
SQL against this module.

Also here: the channels the paths talk on, and the near-cache announcement format the relays send
after each batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import msgspec

# NOTIFY channels. The outbox channel's payload is only a wake-up hint (docs/adr/0002).
OUTBOX_CHANNEL = "outbox"
INVALIDATION_CHANNEL = "catalog_invalidation"
# NOTIFY payloads must stay under 8000 bytes.
ANNOUNCEMENT_MAX_BYTES = 7_000


class EventType(StrEnum):
    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    INVENTORY_CHANGED = "product.inventory_changed"
    PRODUCT_ARCHIVED = "product.archived"


class ProductChanged(msgspec.Struct, kw_only=True, frozen=True):
    """Every event's payload: enough for the relay to fence the product and bump its lists.

    ``version`` is the row's version after the change (fences compare it); ``old_category_id``
    differs from ``category_id`` when the product moved, and both category lists change then.
    """

    id: int
    version: int
    category_id: int
    old_category_id: int


_to_event = msgspec.json.Decoder(ProductChanged)


def encode_event(event: ProductChanged) -> dict[str, Any]:
    """The payload as the outbox ``jsonb`` column stores it."""
    return msgspec.to_builtins(event)  # type: ignore[no-any-return]


def parse_event(payload: object) -> ProductChanged | None:
    """The event in an outbox payload, or None for a payload this contract does not describe.

    Unknown extra keys are tolerated (a newer writer may add some); missing or mistyped required
    ones are not.
    """
    return check_event(payload)[0]


def check_event(payload: object) -> tuple[ProductChanged | None, str]:
    """The event in an outbox payload and "", or None and why the payload breaks the contract."""
    if isinstance(payload, (bytes, str)):
        try:
            return _to_event.decode(payload), ""
        except msgspec.DecodeError as exc:
            return None, str(exc)[:300]
    if isinstance(payload, Mapping):
        try:
            return msgspec.convert(payload, ProductChanged, strict=True), ""
        except msgspec.ValidationError as exc:
            return None, str(exc)[:300]
    return None, f"expected a JSON object, got {type(payload).__name__}"


def encode_announcements(versions: Mapping[int, int]) -> list[str]:
    """``"id:version,..."`` payloads for the invalidation channel, each under the NOTIFY limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for product_id, version in versions.items():
        item = f"{product_id}:{version}"
        if current and size + len(item) + 1 > ANNOUNCEMENT_MAX_BYTES:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(item)
        size += len(item) + 1
    if current:
        payloads.append(",".join(current))
    return payloads


def parse_announcement(payload: str) -> list[tuple[int, int]]:
    """The ``(product_id, version)`` pairs of one announcement; malformed items are skipped."""
    pairs: list[tuple[int, int]] = []
    for item in payload.split(","):
        product_id, _, version = item.partition(":")
        if product_id.isdigit() and version.isdigit():
            pairs.append((int(product_id), int(version)))
    return pairs

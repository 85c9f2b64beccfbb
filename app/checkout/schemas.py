"""Checkout and order schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from app.core.schemas import MAX_BIGINT, Schema

Quantity = Annotated[int, Meta(ge=1, le=100)]
PriceCents = Annotated[int, Meta(ge=0, le=10**12)]
ProductId = Annotated[int, Meta(ge=1, le=MAX_BIGINT)]


class CheckoutLine(Schema, kw_only=True):
    product_id: ProductId
    quantity: Quantity
    # The price the shopper saw. If the truth differs, nothing is charged: 409 price_changed.
    expected_price_cents: PriceCents


class CheckoutRequest(Schema, kw_only=True):
    items: Annotated[list[CheckoutLine], Meta(min_length=1, max_length=50)]


class OrderLine(msgspec.Struct, kw_only=True):
    product_id: int
    quantity: int
    price_cents: int


class Order(msgspec.Struct, kw_only=True):
    order_id: int
    items: list[OrderLine]
    total_cents: int
    currency: str
    created_at: datetime


class OrderPlaced(Order, kw_only=True):
    """The checkout's answer: the order, and the token that opens it (``X-Order-Token``)."""

    order_token: str

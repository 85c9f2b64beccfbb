"""What admin writes accept. (What they return is the product representation, app/contracts/product.py.)"""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, UnsetType

from app.core.schemas import MAX_BIGINT, Schema
from app.core.validation import LINE_PATTERN, TEXT_PATTERN, TEXT_RULE

Sku = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=LINE_PATTERN, description=TEXT_RULE)]
Description = Annotated[str, Meta(max_length=5000, pattern=TEXT_PATTERN, description=TEXT_RULE)]
CategoryId = Annotated[int, Meta(ge=1, le=MAX_BIGINT)]
PriceCents = Annotated[int, Meta(ge=0, le=10**12)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
Inventory = Annotated[int, Meta(ge=0, le=2**31 - 1)]
InventoryDeltaValue = Annotated[int, Meta(ge=-1_000_000, le=1_000_000)]


class ProductCreate(Schema, kw_only=True):
    sku: Sku
    name: Name
    description: Description = ""
    category_id: CategoryId
    price_cents: PriceCents
    currency: Currency = "USD"
    inventory: Inventory = 0


class ProductReplace(Schema, kw_only=True):
    """PUT: the whole editable representation. Stock changes only through the inventory endpoint."""

    sku: Sku
    name: Name
    description: Description
    category_id: CategoryId
    price_cents: PriceCents
    currency: Currency


class ProductPatch(Schema, kw_only=True):
    """PATCH: any subset of the editable fields; ``null`` is not a value any field can take."""

    sku: Sku | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    category_id: CategoryId | UnsetType = UNSET
    price_cents: PriceCents | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET


class InventoryDelta(Schema, kw_only=True):
    delta: InventoryDeltaValue

"""The product representation: the JSON every display read, write response and cache entry carries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import msgspec


class ProductRead(msgspec.Struct, kw_only=True):
    id: int
    sku: str
    name: str
    description: str
    category_id: int
    price_cents: int
    currency: str
    inventory: int
    version: int
    updated_at: datetime


class Row(Protocol):
    """A database row by column name (an asyncpg Record, or a dict in tests)."""

    def __getitem__(self, key: str, /) -> Any: ...


def product_from_row(row: Row) -> ProductRead:
    """A product from a database row holding (at least) every field of the representation."""
    return ProductRead(
        id=row["id"], sku=row["sku"], name=row["name"], description=row["description"],
        category_id=row["category_id"], price_cents=row["price_cents"], currency=row["currency"],
        inventory=row["inventory"], version=row["version"], updated_at=row["updated_at"],
    )  # fmt: skip

"""Display reads of products: pre-encoded JSON bytes, ready to send as they are."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from app.catalog.reads.routing import ReadRouter, ReadSource
from app.catalog.schemas import ProductRead
from app.core.metrics import READ_SOURCE
from app.core.sql import load_queries

Q = load_queries("catalog")
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ProductView:
    body: bytes  # the product JSON, encoded once
    version: int
    source: ReadSource


class ProductReads:
    """The product page read path (cache comes in front of this in the fast-path work)."""

    def __init__(self, router: ReadRouter) -> None:
        self.router = router

    async def get_product(self, product_id: int) -> ProductView | None:
        """The product as displayed, or None when it does not exist or is archived."""
        row, source, reason = await self.router.fetchrow(Q["get_product"], product_id)
        READ_SOURCE.labels("product.get", source, reason).inc()
        if row is None:
            return None
        product = ProductRead(**dict(row))
        return ProductView(body=_encoder.encode(product), version=product.version, source=source)

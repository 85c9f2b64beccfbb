"""What the composition root builds once per process and hands to handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from redis.asyncio import Redis

from app.catalog.reads.routing import ReadRouter
from app.catalog.reads.service import ListReads, ProductReads
from app.catalog.writes.service import ProductWrites
from app.checkout.service import Checkout
from app.core.db import WritePool
from app.core.ryw import RywCodec
from app.core.settings import Settings
from app.outbox.relay import OutboxRelay


@dataclass(slots=True)
class Services:
    settings: Settings
    write_pool: WritePool
    reads_router: ReadRouter
    redis: Redis
    ryw: RywCodec
    product_reads: ProductReads
    list_reads: ListReads
    checkout: Checkout
    product_writes: ProductWrites
    relay: OutboxRelay | None = None


def services_of(request: Request[Any, Any, Any]) -> Services:
    """The process's services (a plain attribute read: the product page is too hot for DI)."""
    services: Services = request.app.state.services
    return services

"""What the display path hands its routes: pre-encoded bodies and where they came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from app.contracts.product import ProductRead
from app.fastpath.display_cache import CacheState
from app.fastpath.replica_router import Route

Source = Literal["cache", "replica", "primary", "none"]


@dataclass(frozen=True, slots=True)
class View:
    """A display response, ready to send: pre-encoded bytes and where they came from."""

    body: bytes
    source: Source
    cache: CacheState
    reason: str
    version: int | None = None
    degraded: bool = False  # read from a replica while the primary is unreachable


def read_reason(route: Route, *, writer: bool = False) -> str:
    """Why a database read was served where it was, as metrics label it."""
    if route.degraded:
        return "primary-down"
    if route.source == "replica":
        return "miss"
    return "ryw" if writer else route.reason


def database_view(
    body: bytes, route: Route, cache: CacheState, *, writer: bool = False, version: int | None = None
) -> View:
    """A view of rows read through ``route``."""
    return View(body, route.source, cache, read_reason(route, writer=writer), version, route.degraded)


class ProductPage(msgspec.Struct):
    items: list[ProductRead]
    next_cursor: str | None


class SearchPage(msgspec.Struct):
    items: list[ProductRead]
    next_cursor: str | None
    mode: str


class Items(msgspec.Struct):
    items: list[ProductRead]

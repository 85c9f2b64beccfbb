"""What the display path hands its routes: pre-encoded bodies and where they came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from app.contracts.product import ProductRead
from app.fastpath.display_cache import CacheState

Source = Literal["cache", "replica", "primary", "none"]


@dataclass(frozen=True, slots=True)
class View:
    """A display response, ready to send: pre-encoded bytes and where they came from."""

    body: bytes
    source: Source
    cache: CacheState
    reason: str
    version: int | None = None


class ProductPage(msgspec.Struct):
    items: list[ProductRead]
    next_cursor: str | None


class SearchPage(msgspec.Struct):
    items: list[ProductRead]
    next_cursor: str | None
    mode: str


class Items(msgspec.Struct):
    items: list[ProductRead]

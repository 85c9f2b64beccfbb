"""Opaque keyset cursors: base64url JSON, validated on the way back in (a bad cursor is a 400)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import msgspec

from app.core.problems import Problem
from app.core.schemas import MAX_BIGINT

Id = Annotated[int, msgspec.Meta(ge=0, le=MAX_BIGINT)]
# Ranks are float4 in SQL: anything outside this range cannot be one we issued.
Rank = Annotated[float, msgspec.Meta(ge=0.0, le=1e30)]


class SearchCursor(msgspec.Struct, array_like=True, frozen=True):
    mode: Annotated[str, msgspec.Meta(max_length=16)]  # "fulltext" | "fuzzy"
    rank: Rank
    last_id: Id
    query: Annotated[str, msgspec.Meta(max_length=64)]  # digest of the normalised query


class CategoryCursor(msgspec.Struct, array_like=True, frozen=True):
    category_id: Id
    last_id: Id


def encode_cursor(cursor: msgspec.Struct) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).rstrip(b"=").decode("ascii")


def decode_cursor(text: str, kind: type[msgspec.Struct]) -> msgspec.Struct:
    """The cursor, or a 400 problem naming the ``cursor`` parameter."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=kind)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise Problem(
            400,
            "invalid_cursor",
            "cursor is not one this service issued",
            errors=[{"field": "cursor", "source": "query", "message": "not a cursor from this service"}],
        ) from None

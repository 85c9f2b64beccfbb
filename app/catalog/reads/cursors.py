"""Opaque keyset cursors: base64url JSON, validated on the way back in (a bad cursor is a 400)."""

from __future__ import annotations

import base64
import binascii

import msgspec

from app.core.problems import Problem


class SearchCursor(msgspec.Struct, array_like=True, frozen=True):
    mode: str  # "fulltext" | "fuzzy"
    rank: float
    last_id: int
    query: str  # digest of the normalised query the cursor belongs to


class CategoryCursor(msgspec.Struct, array_like=True, frozen=True):
    category_id: int
    last_id: int


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

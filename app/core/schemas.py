"""Base schema for request bodies, shared by every context."""

from __future__ import annotations

import msgspec

MAX_BIGINT = 2**63 - 1


class Schema(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base for request bodies: unknown fields are an error, not silently dropped."""

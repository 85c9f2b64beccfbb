"""Base schema for request bodies, shared by every context."""

from __future__ import annotations

import msgspec

# The largest id the API takes: the largest integer every JSON parser (and the OpenAPI document)
# represents exactly, far above any id the sequences will reach.
MAX_BIGINT = 2**53 - 1


class Schema(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base for request bodies: unknown fields are an error, not silently dropped."""

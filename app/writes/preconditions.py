"""Conditional writes: the ``If-Match`` header against the product's version (its ETag)."""

from __future__ import annotations

import re

from app.core.problems import Problem

_ETAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')


def parse_if_match(value: str | None) -> int | None:
    """``"3"`` → 3; absent or ``*`` → None (any current version); anything else is a 400."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise Problem(400, "invalid_if_match", 'If-Match must be an ETag such as "3"')
    return int(match.group(1))

"""Conditional writes by the book (RFC 9110 13.1.1): ``If-Match`` against the product's ETag.

Product ETags are strong (``"<version>"``) and ``If-Match`` uses the strong comparison: a weak tag
(``W/"3"``) never matches, so a write carrying only weak tags is refused with 412, like a stale
one. ``*`` matches any current product; a list matches if any of its tags does. A value that is
not an entity-tag list names no version either: the write is refused with 412 (never applied,
never silently treated as absent). The header is optional on every write that takes it: without
it the last writer wins.
"""

from __future__ import annotations

import re

_TAG = re.compile(r'[ \t]*(W/)?"([^"]*)"[ \t]*(?:,|$)')
_VERSION = re.compile(r"^\d{1,18}$")


def parse_if_match(value: str | None) -> list[int] | None:
    """The versions the client accepts: None for any (absent or ``*``), else the strong tags' versions.

    ``"3"`` → [3]; ``"3", "4"`` → [3, 4]; ``W/"3"`` → [] and ``v1`` → []: both match nothing (412).
    """
    if value is None or value.strip() == "*":
        return None
    versions: list[int] = []
    position = 0
    text = value.strip()
    while position < len(text):
        match = _TAG.match(text, position)
        if match is None or match.end() == position:
            return []  # not a list of entity-tags: names no version
        weak, tag = match.group(1), match.group(2)
        if not weak and _VERSION.match(tag):
            versions.append(int(tag))
        position = match.end()
    return versions

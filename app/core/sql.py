"""Named SQL blocks from ``sql/queries/*.sql``: every file parsed once, here, at first use.

A block starts with ``-- name --`` followed by a one-line ``-- comment``; the SQL runs until
the next block. Keeping SQL in files keeps it visible, greppable and reviewable as SQL. Modules
bind their context once (``Q = queries("catalog")``) and index it with literal names, which
``tests/unit/core/test_sql.py`` checks against the files.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from types import MappingProxyType
from typing import Final

SQL_DIR: Final = Path(__file__).resolve().parents[2] / "sql"
QUERIES_DIR: Final = SQL_DIR / "queries"
MIGRATIONS_DIR: Final = SQL_DIR / "migrations"

_BLOCK = re.compile(r"^-- ([a-z_][a-z0-9_]*) --\n", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a queries file into ``{name: sql}``; duplicate names are an error."""
    parts = _BLOCK.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise ValueError(f"duplicate query name {name!r}")
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        found[name] = "\n".join(lines).strip().rstrip(";")
    return found


@functools.cache
def _all_queries() -> MappingProxyType[str, MappingProxyType[str, str]]:
    return MappingProxyType(
        {
            path.stem: MappingProxyType(parse_queries(path.read_text(encoding="utf-8")))
            for path in sorted(QUERIES_DIR.glob("*.sql"))
        }
    )


def queries(context: str) -> MappingProxyType[str, str]:
    """The queries of one context (one file of ``sql/queries``), e.g. ``queries("catalog")``."""
    return _all_queries()[context]


def contexts() -> list[str]:
    """Every query file's context name."""
    return list(_all_queries())

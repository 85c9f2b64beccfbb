"""Named SQL blocks from ``sql/queries/*.sql``, parsed once at import.

A block starts with ``-- name --`` followed by a one-line ``-- comment``; the SQL runs until
the next block. Keeping SQL in files keeps it visible, greppable and reviewable as SQL.
"""

from __future__ import annotations

import re
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
QUERIES_DIR = SQL_DIR / "queries"
MIGRATIONS_DIR = SQL_DIR / "migrations"

_BLOCK = re.compile(r"^-- ([a-z_][a-z0-9_]*) --\n", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a queries file into ``{name: sql}``; duplicate names are an error."""
    parts = _BLOCK.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"duplicate query name {name!r}")
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


def load_queries(context: str) -> dict[str, str]:
    """Queries of one bounded context, e.g. ``load_queries("catalog")``."""
    return parse_queries((QUERIES_DIR / f"{context}.sql").read_text(encoding="utf-8"))

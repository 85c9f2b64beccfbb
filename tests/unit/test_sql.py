from __future__ import annotations

import pytest

from app.core.migrate import create_database, discover
from app.core.sql import load_queries, parse_queries


def test_catalog_queries_exist() -> None:
    queries = load_queries("catalog")
    expected = {
        "get_product",
        "product_state",
        "insert_product",
        "update_product",
        "adjust_inventory",
        "archive_product",
        "insert_outbox_event",
        "commit_lsn",
    }
    assert expected <= set(queries)
    assert all(q.strip() and not q.rstrip().endswith(";") for q in queries.values())


def test_ops_queries_exist() -> None:
    assert {"primary_status", "replica_status"} <= set(load_queries("ops"))


def test_parse_rejects_duplicate_names() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        parse_queries("-- a --\n-- one\nSELECT 1;\n-- a --\n-- two\nSELECT 2;\n")


def test_parse_strips_comment_line() -> None:
    assert parse_queries("-- q --\n-- says why\nSELECT 1;\n") == {"q": "SELECT 1"}


def test_migrations_are_numbered_in_order() -> None:
    versions = [m.version for m in discover()]
    assert versions == sorted(versions)
    assert versions[0] == 1


@pytest.mark.parametrize(
    ("name", "template"), [("bad; DROP DATABASE catalog", None), ("Catalog", None), ("", None), ("ok", "bad-name")]
)
async def test_create_database_takes_only_plain_identifiers(name: str, template: str | None) -> None:
    # Rejected before connecting: the DSN points nowhere.
    with pytest.raises(ValueError, match="invalid database name"):
        await create_database("postgresql://nobody@127.0.0.1:1/postgres", name, template=template)

"""SQL lives in ``sql/queries/*.sql``; every name the code asks for exists, and every query is used."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.migrate import create_database, discover
from app.core.sql import contexts, parse_queries, queries

ROOT = Path(__file__).resolve().parents[3]
CODE = [*sorted((ROOT / "app").rglob("*.py")), *sorted((ROOT / "ops" / "devtools").rglob("*.py"))]


def _uses(path: Path) -> Iterator[tuple[str, str, int]]:
    """``(context, name, line)`` for every ``Q["name"]`` where ``Q = queries("context")``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "queries"
            and isinstance(node.value.args[0], ast.Constant)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound[target.id] = str(node.value.args[0].value)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and isinstance(node.slice, ast.Constant)
        ):
            yield bound[node.value.id], str(node.slice.value), node.lineno


USES = [(path, *use) for path in CODE for use in _uses(path)]


def test_the_scan_finds_the_code_s_queries() -> None:
    # Guards the scan itself: if the binding convention changed, the checks below would pass vacuously.
    assert len(USES) > 30
    assert {context for _, context, _, _ in USES} == set(contexts())


@pytest.mark.parametrize(("path", "context", "name", "line"), USES, ids=lambda v: v if isinstance(v, str) else "")
def test_every_query_the_code_uses_exists(path: Path, context: str, name: str, line: int) -> None:
    assert name in queries(context), f"{path.relative_to(ROOT)}:{line} uses {context}.{name}, which no file defines"


def test_every_defined_query_is_used() -> None:
    used = {(context, name) for _, context, name, _ in USES}
    defined = {(context, name) for context in contexts() for name in queries(context)}
    assert defined - used == set(), "dead SQL: delete it or use it"


def test_queries_are_parsed_once_and_read_only() -> None:
    assert queries("catalog") is queries("catalog")
    with pytest.raises(TypeError):
        queries("catalog")["get_product"] = "DROP TABLE products"  # type: ignore[index]


def test_parse_rejects_duplicate_names() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        parse_queries("-- a --\n-- one\nSELECT 1;\n-- a --\n-- two\nSELECT 2;\n")


def test_parse_strips_comment_lines_and_the_semicolon() -> None:
    assert parse_queries("-- q --\n-- says why\n-- and more\nSELECT 1;\n") == {"q": "SELECT 1"}


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

"""The README cannot drift from the tree: its layout table names real paths, its settings are real."""

from __future__ import annotations

import re
from pathlib import Path

from app.core.settings import RENAMED, variables

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOP_LEVEL = ("app/", "ops/", "sql/", "tests/", "docs/")
# A backticked token that names a path: no spaces or placeholders; from the root (``ops/hotpath``), or
# relative to its row's folder when it is a folder (``stack/``) or a file (``relay.py``).
ANY_PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)*/?$")
RELATIVE_PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)*(?:/|\.(?:py|sql|md|json|ya?ml|toml|sh|template))$")


def _table_after(marker: str) -> list[list[str]]:
    """The rows (cells, header and separator dropped) of the first Markdown table after ``marker``."""
    lines = README[README.index(marker) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows: list[list[str]] = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _layout_paths() -> dict[str, set[Path]]:
    """Each row's path → every path the row names (relative names resolve against a folder row)."""
    named: dict[str, set[Path]] = {}
    for row in _table_after("Where things are"):
        (path,) = _ticked(row[0])
        base = ROOT / path if path.endswith("/") else ROOT
        found = {ROOT / path}
        for token in _ticked(row[1]):
            if token.startswith(TOP_LEVEL) and ANY_PATH.match(token):
                found.add(ROOT / token)
            elif RELATIVE_PATH.match(token):
                found.add(base / token)
        named[path] = found
    return named


def test_every_path_in_the_layout_table_exists() -> None:
    named = _layout_paths()
    assert len(named) >= 10, "the 'Where things are' table was not found or lost its rows"
    missing = sorted(str(p.relative_to(ROOT)) for paths in named.values() for p in paths if not p.exists())
    assert missing == []


def test_every_package_of_the_service_has_a_row() -> None:
    packages = {f"app/{p.parent.name}/" for p in (ROOT / "app").glob("*/__init__.py")}
    assert packages - set(_layout_paths()) == set()


def test_the_settings_table_names_only_known_variables() -> None:
    named = {v for row in _table_after("## Configuration") for v in re.findall(r"\bCATALOG_[A-Z0-9_]+\b", row[0])}
    assert len(named) >= 20, "the settings table was not found or lost its rows"
    assert named - set(variables()) == set()


def test_no_renamed_variable_is_named_anywhere() -> None:
    assert [old for old in RENAMED if re.search(rf"\b{old}\b", README)] == []

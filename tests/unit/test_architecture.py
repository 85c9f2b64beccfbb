"""The layout is the architecture: who may import whom, checked on every module of ``app/``.

core ← contracts ← features (fastpath, writes, checkout, invalidation) ← main. Features never
import each other or the composition root; nothing outside the composition root reads
``app.state``; the service never imports the dev tools.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
FEATURES = {"fastpath", "writes", "checkout", "invalidation"}
# Room → the rooms it may import from (besides itself and the standard library / third parties).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "contracts": {"core"},
    "fastpath": {"core", "contracts"},
    "writes": {"core", "contracts"},
    "checkout": {"core", "contracts"},
    "invalidation": {"core", "contracts"},
    "seed": {"core"},
    "health": {"core", "contracts"},
    "admin_cli": {"core", "contracts", "invalidation"},
    "cli": {"core", "contracts", "invalidation", "seed", "main"},
    "openapi": {"core", "contracts"},
    "main": {"core", "contracts", *FEATURES, "health", "openapi"},
    "__main__": {"cli"},
}


def _room(path: Path) -> str:
    relative = path.relative_to(APP)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


MODULES = sorted(p for p in APP.rglob("*.py") if p.name != "__init__.py")


def test_every_module_belongs_to_a_known_room() -> None:
    assert {_room(p) for p in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_imports_follow_the_dependency_direction(path: Path) -> None:
    room = _room(path)
    for module in _imports(path):
        if module.startswith("devtools"):
            pytest.fail(f"{path.name} imports the dev tools ({module}); they do not ship")
        if not module.startswith("app."):
            continue
        target = module.split(".")[1]
        assert target == room or target in ALLOWED[room], f"{room} may not import {module}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_only_the_composition_root_reads_app_state(path: Path) -> None:
    if path.name == "main.py" and path.parent == APP:
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "state" and isinstance(node.value, ast.Attribute):
            assert node.value.attr != "app", f"{path.name}:{node.lineno} reaches through app.state"


def test_modules_stay_small() -> None:
    # ~300 lines each, so a module does one job; the policy table is long by nature (one entry per route).
    exceptions = {"contracts/policy.py"}
    long = {
        str(p.relative_to(APP)): n
        for p in MODULES
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 320 and str(p.relative_to(APP)) not in exceptions
    }
    assert long == {}

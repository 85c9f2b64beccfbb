"""Fixtures live in ``tests/fixtures/`` by concern; this file only registers them.

The suite starts its own stack (the launcher ``ops/dev`` uses) on free ports in a temporary
directory, so it never collides with a running dev stack; ``CATALOG_TEST_BACKEND=containers`` runs Postgres
and Redis in containers instead (``tests/fixtures/backend.py``).
"""

pytest_plugins = [
    "tests.fixtures.backend",
    "tests.fixtures.engine",
    "tests.fixtures.stack",
    "tests.fixtures.database",
    "tests.fixtures.app",
]

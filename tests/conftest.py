"""Fixtures live in ``tests/fixtures/`` by concern; this file only registers them.

The suite starts its own stack (the launcher ``ops/dev`` uses) on free ports in a temporary
directory, so it never collides with a running dev stack.
"""

pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.database", "tests.fixtures.app"]

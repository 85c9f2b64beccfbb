"""Scratch databases on the dev stack's primary, so benchmarks never touch the demo catalog."""

from __future__ import annotations

from app.core.migrate import create_database, drop_database, migrate

__all__ = ["drop_database", "scratch_database"]


async def scratch_database(admin_dsn: str, name: str) -> str:
    """A freshly migrated database ``name`` (dropped first if it exists); returns its DSN."""
    dsn = await create_database(admin_dsn, name, replace=True)
    await migrate(dsn)
    return dsn

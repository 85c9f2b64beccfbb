"""Scratch databases on the dev stack's primary, so benchmarks never touch the demo catalog."""

from __future__ import annotations

import asyncpg

from app.core.migrate import migrate


async def scratch_database(admin_dsn: str, name: str) -> str:
    """A freshly migrated database ``name`` (dropped first if it exists); returns its DSN."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    dsn = f"{admin_dsn.rpartition('/')[0]}/{name}"
    await migrate(dsn)
    return dsn


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()

"""Migrations: re-running is a no-op, and sql/schema.sql is exactly what the migrations build."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.core.migrate import create_database, discover, drop_database, migrate
from app.core.sql import SQL_DIR
from devtools.stack import Stack
from devtools.stack.system import pg_bindir

pytestmark = pytest.mark.integration


@pytest.fixture
async def empty_databases(stack: Stack) -> AsyncIterator[tuple[str, str]]:
    c = stack.config
    admin_dsn = c.superuser_dsn(c.primary_port, "postgres")
    names = ("schema_from_migrations", "schema_from_file")
    try:
        yield tuple([await create_database(admin_dsn, name, replace=True) for name in names])  # type: ignore[misc]
    finally:
        for name in names:
            await drop_database(admin_dsn, name)


def _dump(dsn: str) -> str:
    out = subprocess.run(
        [
            str(pg_bindir() / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=schema_migrations",
            dsn,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    skip = ("--", "\\restrict", "\\unrestrict")  # pg_dump 15.14+ wraps dumps in a random-keyed guard
    return "\n".join(line for line in out.splitlines() if line and not line.startswith(skip))


async def test_migrate_twice_is_a_no_op(empty_databases: tuple[str, str]) -> None:
    dsn = empty_databases[0]
    applied = await migrate(dsn)
    assert [m.version for m in applied] == [m.version for m in discover()]
    dump = _dump(dsn)
    assert await migrate(dsn) == []
    assert _dump(dsn) == dump


async def test_schema_file_equals_the_migrated_schema(empty_databases: tuple[str, str]) -> None:
    migrated, from_file = empty_databases
    await migrate(migrated)
    conn = await asyncpg.connect(from_file)
    try:
        await conn.execute((SQL_DIR / "schema.sql").read_text(encoding="utf-8"))
    finally:
        await conn.close()
    assert _dump(from_file) == _dump(migrated)
    assert "CREATE TABLE public.outbox" in _dump(migrated)


async def test_create_database_keeps_or_replaces_and_returns_the_dsn(stack: Stack) -> None:
    c = stack.config
    name = "create_database_check"
    admin_dsn = c.superuser_dsn(c.primary_port, "postgres") + "?sslmode=disable"
    dsn = await create_database(admin_dsn, name, template="template0", replace=True)
    try:
        assert dsn == c.superuser_dsn(c.primary_port, name) + "?sslmode=disable"
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE TABLE marker (id int)")
        finally:
            await conn.close()

        assert await create_database(admin_dsn, name) == dsn  # exists: kept as it is
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT to_regclass('marker') IS NOT NULL")
        finally:
            await conn.close()

        await create_database(admin_dsn, name, template="template0", replace=True)  # dropped, made anew
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT to_regclass('marker') IS NULL")
        finally:
            await conn.close()
    finally:
        await drop_database(admin_dsn, name)

"""Migrations: re-running is a no-op, and sql/schema.sql is exactly what the migrations build."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from app.admin_cli.outbox import outbox_status
from app.core.migrate import create_database, discover, drop_database, migrate
from app.core.sql import SQL_DIR, queries
from app.invalidation.retention import purge_processed
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


_EVENTS = """SELECT id, event_type, aggregate_id, payload::text AS payload, created_at, attempts, last_error,
                     processed_by, date_trunc('second', processed_at) AS processed_second
              FROM {} ORDER BY id"""


async def test_the_processed_batches_migration_moves_processed_events_and_keeps_pending_ones(
    empty_databases: tuple[str, str], tmp_path: Path
) -> None:
    dsn = empty_databases[0]
    ours = next(m for m in discover() if m.name == "outbox_processed_batches")
    for migration in discover():
        if migration.version < ours.version:  # the database as it was before processed events left the outbox
            shutil.copy(migration.path, tmp_path)
    await migrate(dsn, tmp_path)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO outbox (event_type, aggregate_id, payload, attempts, processed_at, processed_by)
               SELECT 'product.updated', g, jsonb_build_object('id', g, 'version', g), 1,
                      date_trunc('second', now()) - interval '1 minute' + g * interval '1 microsecond', 'r1'
               FROM generate_series(1, 2500) AS g;
               INSERT INTO outbox (event_type, aggregate_id, payload, attempts, processed_at, processed_by)
               SELECT 'product.created', g, jsonb_build_object('id', g, 'version', 1), 2,
                      now() - interval '25 hours', 'r2'
               FROM generate_series(1, 10) AS g;
               INSERT INTO outbox (event_type, aggregate_id, payload) VALUES ('product.updated', 7, '{"id": 7}');
               INSERT INTO outbox (event_type, aggregate_id, payload, attempts, last_error)
               VALUES ('product.updated', 8, '{"id": 8}', 2, 'redis: ConnectionError')"""
        )
        before = [dict(r) for r in await conn.fetch(_EVENTS.format("outbox"))]
        assert [m.version for m in await migrate(dsn)] == [m.version for m in discover() if m.version >= ours.version]

        assert [dict(r) for r in await conn.fetch(_EVENTS.format("outbox_events"))] == before
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 2, "only pending events stay in the outbox"
        batches = await conn.fetch("SELECT processed_by, events FROM outbox_processed ORDER BY id")
        assert [(r["processed_by"], r["events"]) for r in batches] == [("r2", 10), ("r1", 2000), ("r1", 500)]
        # What reads processed events works on the moved ones.
        status = await outbox_status(conn)
        assert (status["pending"], status["failing"], status["processed_last_hour"]) == (2, 1, 2500)
        recent = await conn.fetchrow(queries("outbox")["recently_processed"], 3600.0, 0)
        assert recent is not None
        assert len(recent["payloads"]) == 2000
        assert await purge_processed(conn, older_than_s=24 * 3600) == 10
        assert await conn.fetchval("SELECT count(*) FROM outbox_events") == 2502
    finally:
        await conn.close()


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

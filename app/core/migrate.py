"""Numbered SQL migrations, applied in order and recorded in ``schema_migrations``.

Each migration runs in its own transaction under an advisory lock, so two concurrent
``catalog migrate`` runs apply each migration once.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from app.core.sql import MIGRATIONS_DIR

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x636174616C6F67  # "catalog"
# Database names are spliced into DDL (which takes no bind parameters), so only plain identifiers pass.
# A plain Postgres identifier (databases and roles): DDL takes no bind parameters, so only these.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migrations in version order; a malformed file name or duplicate version is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations share version {version}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations; returns the ones applied (empty when up to date)."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "catalog.ops"})
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        done: list[Migration] = []
        for migration in discover(directory):
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.path.read_text(encoding="utf-8"))
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        await conn.close()


async def grant_app_role(dsn: str, role: str, *, password: str | None = None) -> None:
    """Create the service's least-privilege login role (if missing) and grant it table access only."""
    if not _IDENTIFIER.fullmatch(role):
        raise ValueError(f"invalid role name {role!r}")
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "catalog.ops"})
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        if not exists:
            await conn.execute(f"CREATE ROLE {role} LOGIN")
        # The role name is validated above; DDL cannot take bind parameters.
        grants = f"""GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
                REVOKE ALL ON schema_migrations FROM {role};
                GRANT SELECT ON schema_migrations TO {role};
                GRANT pg_monitor TO {role};"""  # noqa: S608
        await conn.execute(grants)
        if password is not None:
            # DDL takes no bind parameters: let the server quote the literal.
            statement = await conn.fetchval(
                "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
            )
            await conn.execute(statement)
    finally:
        await conn.close()


def _database_dsn(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``: same user, hosts, port and query string."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("expected a postgresql:// DSN")
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(admin_dsn: str, name: str, *, template: str | None = None, replace: bool = False) -> str:
    """Create database ``name`` if it is missing and return its DSN (``admin_dsn`` with the database swapped).

    ``admin_dsn`` points at another database (usually ``postgres``) as a role allowed to create
    databases. With ``replace`` an existing ``name`` is dropped first, disconnecting its sessions;
    without it an existing database is kept as it is, whatever ``template`` says.
    """
    for identifier in (name, template):
        if identifier is not None and not _IDENTIFIER.fullmatch(identifier):
            raise ValueError(f"invalid database name {identifier!r}")
    dsn = _database_dsn(admin_dsn, name)
    conn = await asyncpg.connect(admin_dsn, server_settings={"application_name": "catalog.ops"})
    try:
        if replace:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            create = f"CREATE DATABASE {name}" if template is None else f"CREATE DATABASE {name} TEMPLATE {template}"
            # Another process may create it between the check and here; that is the outcome we want.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(create)
    finally:
        await conn.close()
    return dsn


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"invalid database name {name!r}")
    conn = await asyncpg.connect(admin_dsn, server_settings={"application_name": "catalog.ops"})
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()

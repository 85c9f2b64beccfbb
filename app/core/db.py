"""Connection pools. Reads and writes get different types so they cannot be mixed up.

A ``ReadPool`` (a replica, or the primary as the display path's fallback) runs every session
with ``default_transaction_read_only=on``, so even a buggy display handler cannot write.
A ``WritePool`` is the primary only; the write path and decision reads take it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NewType

import asyncpg
import msgspec

from app.core.settings import DatabaseSettings

if TYPE_CHECKING:
    _Pool = asyncpg.Pool[asyncpg.Record]
else:
    _Pool = asyncpg.Pool

ReadPool = NewType("ReadPool", _Pool)
WritePool = NewType("WritePool", _Pool)

Role = Literal["api", "relay", "ops"]

# Errors that mean "this server is unreachable or going away", as opposed to a bad query.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    # jsonb in and out as raw JSON text encoded/decoded by msgspec.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: msgspec.json.encode(v).decode(),
        decoder=msgspec.json.decode,
        schema="pg_catalog",
    )


def _server_settings(settings: DatabaseSettings, role: Role, *, read_only: bool) -> dict[str, str]:
    server = {
        "application_name": f"catalog.{role}",
        "statement_timeout": str(settings.statement_timeout_ms),
        "idle_in_transaction_session_timeout": "30000",
    }
    if read_only:
        server["default_transaction_read_only"] = "on"
    return server


async def create_write_pool(settings: DatabaseSettings, role: Role = "api") -> WritePool:
    """The primary pool for writes and decision reads."""
    pool = await asyncpg.create_pool(
        settings.primary_dsn,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.connect_timeout_s,
        server_settings=_server_settings(settings, role, read_only=False),
        init=init_connection,
    )
    return WritePool(pool)


async def create_read_pool(dsn: str, settings: DatabaseSettings, role: Role = "api") -> ReadPool:
    """A read-only pool. ``min_size=0`` so a replica that is down at start-up does not stop the app."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=settings.pool_max_size,
        timeout=settings.connect_timeout_s,
        server_settings=_server_settings(settings, role, read_only=True),
        init=init_connection,
    )
    return ReadPool(pool)


def lsn_to_int(lsn: str) -> int:
    """``'16/B374D848'`` → a comparable integer."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(value: int) -> str:
    """The inverse of :func:`lsn_to_int`."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"

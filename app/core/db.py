"""Connection pools with deadlines. Reads and writes get different types so they cannot be mixed up.

A :class:`ReadPool` (a replica, or the primary as the display path's fallback) runs every session
with ``default_transaction_read_only=on``, so even a buggy display handler cannot write.
A :class:`WritePool` is the primary only; the write path and decision reads take it.

Every use is bounded (docs/faults.md, "Deadlines"): connecting by ``connect_timeout_s``, waiting
for a pooled connection by ``acquire_timeout_ms`` (and at most ``max_waiting`` callers wait at
all), every statement by the server's ``statement_timeout`` and, should the server stop
answering, by the client-side ``command_timeout`` just above it. When a server cannot be reached
in time the pool raises :class:`DatabaseUnavailable`, which the edge turns into a 503 with
``Retry-After``; after a connection failure a breaker fails further calls fast for a moment
instead of letting every request wait out its own connect timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
import msgspec
import structlog

from app.core.breaker import CircuitBreaker
from app.core.settings import DatabaseSettings

if TYPE_CHECKING:
    _Pool = asyncpg.Pool[asyncpg.Record]
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    _Pool = asyncpg.Pool
    Connection = asyncpg.pool.PoolConnectionProxy

Role = Literal["api", "relay", "ops", "monitor", "doorbell"]
log = structlog.get_logger("catalog.db")

# Errors that mean "this server is unreachable or going away", as opposed to a bad query.
# (asyncpg's client-side DataError is an InterfaceError: a value the query cannot take, bad input.)
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, starting up, canceled
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InternalClientError,  # the protocol lost track of the connection's state
)
_BAD_INPUT: tuple[type[BaseException], ...] = (asyncpg.exceptions._base.DataError,)


def is_unavailable(exc: BaseException) -> bool:
    """Does ``exc`` say the server could not be used (rather than that the query was wrong or slow)?

    A statement timeout or a replica's recovery conflict (QueryCanceledError) is the statement's
    fate, not the server's: callers decide (the read router retries elsewhere, the edge says 503).
    """
    return isinstance(exc, CONNECTION_ERRORS) and not isinstance(exc, (*_BAD_INPUT, asyncpg.QueryCanceledError))


class DatabaseUnavailable(Exception):  # noqa: N818  (a condition, reported as 503, not a bug)
    """A database a request needs could not be used in time; answered 503 with ``Retry-After``."""

    def __init__(self, server: str, reason: str, *, unreachable: bool = True, retry_after_s: int = 1) -> None:
        super().__init__(f"{server}: {reason}")
        self.server = server
        self.reason = reason
        # True: the server did not answer (down, restarting, cut off). False: it is busy (no free
        # connection in time); a reader must not be sent to staler data for that.
        self.unreachable = unreachable
        self.retry_after_s = retry_after_s


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    # jsonb in and out as raw JSON text encoded/decoded by msgspec.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: msgspec.json.encode(v).decode(),
        decoder=msgspec.json.decode,
        schema="pg_catalog",
    )


def server_settings(settings: DatabaseSettings, role: Role, *, read_only: bool = False) -> dict[str, str]:
    """Session settings for every connection of a role: who it is, and how long anything may take."""
    server = {
        "application_name": f"catalog.{role}",
        "statement_timeout": str(settings.statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(settings.idle_in_transaction_timeout_ms),
    }
    if read_only:
        server["default_transaction_read_only"] = "on"
    return server


def command_timeout_s(settings: DatabaseSettings) -> float:
    """The client-side bound on one statement: the server's own timeout plus a margin to report it."""
    return settings.statement_timeout_ms / 1000 + 1.0


class _BoundedPool:
    """An asyncpg pool whose every use has a deadline and whose failures say which server failed."""

    needs_primary = False  # a read-only answer means "not the primary": unavailable, not a bug

    def __init__(self, pool: _Pool, server: str, settings: DatabaseSettings) -> None:
        self._pool = pool
        self.server = server
        self.acquire_timeout_s = settings.acquire_timeout_ms / 1000
        self.max_waiting = settings.max_waiting
        self.breaker = CircuitBreaker(server, cooldown_s=settings.breaker_cooldown_s)
        self._waiting = 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A pooled connection, or :class:`DatabaseUnavailable` within the acquire deadline."""
        if not self.breaker.allow():
            raise DatabaseUnavailable(self.server, "unreachable (recent connection failure)")
        if self._waiting >= self.max_waiting:
            # A storm: queueing more callers only makes every one of them late.
            self.breaker.release_probe()
            raise DatabaseUnavailable(self.server, "too many requests waiting for a connection", unreachable=False)
        self._waiting += 1
        try:
            # Not acquire(timeout=...): asyncpg runs a timed acquire as a task of its own, a cost
            # every write and uncached read paid; a deadline on this task is the same bound.
            async with asyncio.timeout(self.acquire_timeout_s):
                conn = await self._pool.acquire()
        except TimeoutError:
            self.breaker.release_probe()
            raise DatabaseUnavailable(self.server, "no connection free in time", unreachable=False) from None
        except CONNECTION_ERRORS as exc:
            await self._failed(exc)
            raise DatabaseUnavailable(self.server, f"cannot connect: {type(exc).__name__}") from exc
        except BaseException:
            self.breaker.release_probe()
            raise
        finally:
            self._waiting -= 1
        # Connected (after a failure every older connection was expired, so this one is new).
        self.breaker.success()
        try:
            yield conn
        except asyncpg.exceptions.ReadOnlySQLTransactionError as exc:
            if not self.needs_primary:
                raise
            # The session is on a server in recovery: the primary moved (a failover, a restarting
            # primary that comes up read-only first) and this connection still points at the old
            # one. Nothing was written; every connection is suspect until it reconnects.
            _discard(conn)
            await self._failed(exc)
            raise DatabaseUnavailable(self.server, "not the primary (read-only): the primary is moving") from exc
        except CONNECTION_ERRORS as exc:
            if not is_unavailable(exc):
                raise
            _discard(conn)  # never hand a broken connection to the next caller
            await self._failed(exc)
            raise DatabaseUnavailable(self.server, f"lost: {type(exc).__name__}") from exc
        except asyncio.CancelledError:
            # Cancelled mid-statement (a client gone, a deadline): the server may still be running
            # it; a fresh connection is cheaper than a confused one.
            _discard(conn)
            raise
        finally:
            # A connection already gone with its server (InterfaceError too): the pool opens a new one.
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._pool.release(conn)

    async def _failed(self, exc: BaseException) -> None:
        if not self.breaker.is_open:
            log.warning("db.unavailable", server=self.server, error=type(exc).__name__)
            # Connections opened before the failure may be dead: replace them on their next use.
            await self._pool.expire_connections()
        self.breaker.failure()

    async def expire(self) -> None:
        """Replace every connection on its next use (the server behind the DSN changed role)."""
        await self._pool.expire_connections()

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.acquire() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.acquire() as conn:
            return await conn.execute(query, *args)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), timeout=5)
        except TimeoutError:
            self._pool.terminate()


def _discard(conn: Connection) -> None:
    """Close a pooled connection now; asyncpg may already have detached a dead one from its proxy."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


class ReadPool(_BoundedPool):
    """Read-only sessions: a replica's, or the primary's for display reads that must go there."""


class WritePool(_BoundedPool):
    """The primary, read-write: writes and decision reads."""

    needs_primary = True


async def _create(dsn: str, settings: DatabaseSettings, role: Role, *, read_only: bool) -> _Pool:
    # min_size=0: an instance starts (and serves what it can) while a database is down; the
    # pool connects on first use.
    pool: _Pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=settings.pool_max_size,
        timeout=settings.connect_timeout_s,
        command_timeout=command_timeout_s(settings),
        server_settings=server_settings(settings, role, read_only=read_only),
        init=init_connection,
        reset=keep_session,
    )
    return pool


async def keep_session(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """What a released pooled connection needs beyond asyncpg's own rollback: nothing.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``
    on every release: one more round trip for each write and each uncached read, to undo session
    state this service never creates on pooled connections (no session SET, LISTEN, advisory
    lock or held cursor: settings travel in ``server_settings``, LISTEN has the relay's own
    connection). An open transaction is still rolled back and listeners dropped before this runs.
    """


async def create_write_pool(settings: DatabaseSettings, role: Role = "api") -> WritePool:
    """The primary pool for writes and decision reads."""
    return WritePool(await _create(settings.primary_dsn, settings, role, read_only=False), "primary", settings)


async def create_read_pool(dsn: str, name: str, settings: DatabaseSettings, role: Role = "api") -> ReadPool:
    """A read-only pool on ``dsn``, reported as ``name`` (``primary`` or ``replica-N``)."""
    return ReadPool(await _create(dsn, settings, role, read_only=True), name, settings)


def lsn_to_int(lsn: str) -> int:
    """``'16/B374D848'`` → a comparable integer."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(value: int) -> str:
    """The inverse of :func:`lsn_to_int`."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"

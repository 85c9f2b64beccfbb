"""Test fixtures. The suite starts its own stack (the same launcher as ``ops/dev``) on free ports
in a temporary directory, so it never collides with a running dev stack.

- ``stack``: primary + streaming replica + Redis + two app instances + nginx, for the session.
- ``db``: a fresh database per test, cloned from a migrated and seeded template on the primary
  (and replicated, so replica reads see it).
- ``app`` / ``client``: the app in this test's event loop against that database.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from litestar import Litestar

from app.core.db import lsn_to_int
from app.core.migrate import grant_app_role, migrate
from app.core.settings import Settings, load_settings
from app.main import create_app
from app.seed.seed import seed
from devtools.stack import APP_ROLE, Stack, StackConfig, free_port

TEMPLATE_DB = "catalog_template"
TEST_PRODUCTS = 200
TEST_CATEGORIES = 8
_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    run_dir = Path(tempfile.mkdtemp(prefix="catalog-test-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = StackConfig(
        run_dir=str(run_dir),
        base_dir=str(run_dir / "stack"),
        primary_port=free_port(),
        replica_port=free_port(),
        redis_port=free_port(),
        app_ports=[free_port(), free_port()],
        nginx_port=free_port(),
        admin_token="test-admin-token",
        ryw_secret="test-ryw-secret-0123456789",
        products=TEST_PRODUCTS,
        categories=TEST_CATEGORIES,
        proxy_read_timeout="2s",  # so a failover drill does not wait 15 s per frozen request
    )
    stack = Stack(config, quiet=True)
    try:
        stack.up()
        asyncio.run(_make_template(stack))
        yield stack
    finally:
        stack.destroy()
        shutil.rmtree(run_dir, ignore_errors=True)


async def _make_template(stack: Stack) -> None:
    c = stack.config
    conn = await asyncpg.connect(c.superuser_dsn(c.primary_port, "postgres"))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    dsn = c.superuser_dsn(c.primary_port, TEMPLATE_DB)
    await migrate(dsn)
    await grant_app_role(dsn, APP_ROLE)
    await seed(dsn, products=TEST_PRODUCTS, categories=TEST_CATEGORIES, show_progress=False)


async def wait_for_replica(stack: Stack, within_s: float = 10.0) -> None:
    """Block until the replica has replayed everything the primary has written so far."""
    c = stack.config
    primary = await asyncpg.connect(c.superuser_dsn(c.primary_port, "postgres"))
    replica = await asyncpg.connect(c.superuser_dsn(c.replica_port, "postgres"))
    try:
        target = lsn_to_int(await primary.fetchval("SELECT pg_current_wal_insert_lsn()::text"))
        deadline = time.monotonic() + within_s
        while True:
            replayed = await replica.fetchval("SELECT pg_last_wal_replay_lsn()::text")
            if replayed and lsn_to_int(replayed) >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("replica did not catch up")
            await asyncio.sleep(0.01)
    finally:
        await primary.close()
        await replica.close()


@asynccontextmanager
async def replay_paused(stack: Stack) -> AsyncIterator[None]:
    """Replica lag on demand: WAL keeps arriving, replay stops until the block ends."""
    c = stack.config
    conn = await asyncpg.connect(c.superuser_dsn(c.replica_port, "postgres"))
    try:
        await conn.execute("SELECT pg_wal_replay_pause()")
        while await conn.fetchval("SELECT pg_get_wal_replay_pause_state()") != "paused":  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        yield
    finally:
        await conn.execute("SELECT pg_wal_replay_resume()")
        await conn.close()


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    stack: Stack

    @property
    def primary_dsn(self) -> str:
        """Superuser DSN, for assertions and fault injection."""
        return self.stack.config.superuser_dsn(self.stack.config.primary_port, self.name)

    @property
    def replica_dsn(self) -> str:
        return self.stack.config.superuser_dsn(self.stack.config.replica_port, self.name)

    def settings(self, **overrides: object) -> Settings:
        c = self.stack.config
        values: dict[str, object] = {
            "env": "test",
            "instance_name": "test",
            "primary_dsn": c.app_dsn(c.primary_port, self.name),
            "replica_dsns": (c.app_dsn(c.replica_port, self.name),),
            "redis_url": f"redis://127.0.0.1:{c.redis_port}/1",
            "admin_token": c.admin_token,
            "ryw_secret": c.ryw_secret,
            "cookie_secure": False,
            "debug_headers": True,
            "pool_min_size": 1,
            "pool_max_size": 5,
            "log_level": "warning",
            "log_format": "console",
            # Tests that need the relay switch it on; elsewhere outbox rows must stay put.
            "relay_enabled": False,
        }
        values.update(overrides)
        return load_settings({}, **values)


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[ScratchDatabase]:
    name = f"t_{os.getpid()}_{next(_db_counter)}"
    c = stack.config
    admin = await asyncpg.connect(c.superuser_dsn(c.primary_port, "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        await wait_for_replica(stack)
        redis = aioredis.from_url(f"redis://127.0.0.1:{c.redis_port}/1")
        await redis.flushdb()
        await redis.aclose()
        yield ScratchDatabase(name, stack)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
def settings(db: ScratchDatabase) -> Settings:
    return db.settings()


class AppLifespan:
    """Runs an app's ASGI lifespan in its own task, as a server does.

    (``app.lifespan()`` opens an anyio cancel scope that must close in the task that opened it;
    pytest-asyncio tears fixtures down in another task.)
    """

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self._to_app: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _call(self, message: str, expected: str) -> None:
        await self._to_app.put({"type": message})
        reply = await asyncio.wait_for(self._from_app.get(), timeout=30)
        if reply["type"] != expected:
            raise RuntimeError(f"lifespan {message} failed: {reply}")

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

        async def send(message: dict[str, str]) -> None:
            await self._from_app.put(message)

        self._task = asyncio.create_task(self.app(scope, self._to_app.get, send))  # type: ignore[arg-type]
        await self._call("lifespan.startup", "lifespan.startup.complete")

    async def stop(self) -> None:
        await self._call("lifespan.shutdown", "lifespan.shutdown.complete")
        assert self._task is not None
        await self._task


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    application = create_app(settings)
    lifespan = AppLifespan(application)
    await lifespan.start()
    try:
        yield application
    finally:
        await lifespan.stop()


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as c:
        yield c


@pytest.fixture
async def redis_client(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/1")
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """An app (lifespan started) and a client for it, for tests that need non-default settings."""
    application = create_app(settings)
    lifespan = AppLifespan(application)
    await lifespan.start()
    try:
        relay = application.state.services.relay
        deadline = time.monotonic() + 5
        while relay is not None and not relay.connected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # ready like a real instance: listening before the first request
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as client:
            yield application, client
    finally:
        await lifespan.stop()


@pytest.fixture
def admin_headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.config.admin_token}"}


@pytest.fixture
async def primary(db: ScratchDatabase) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db.primary_dsn)
    try:
        yield conn
    finally:
        await conn.close()

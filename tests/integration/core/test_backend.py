"""The session's services are the ones ``CATALOG_TEST_BACKEND`` asked for, and the replica streams."""

from __future__ import annotations

import socket

import asyncpg
import pytest

from tests.fixtures.backend import Services, selected_backend
from tests.fixtures.database import ScratchDatabase
from tests.fixtures.stack import wait_for_replica

pytestmark = pytest.mark.integration


async def test_the_primary_and_replica_run_where_the_backend_says(stack: Services, db: ScratchDatabase) -> None:
    primary = await asyncpg.connect(db.primary_dsn)
    replica = await asyncpg.connect(db.replica_dsn)
    try:
        hosts = [(await conn.fetchval("SELECT pg_read_file('/etc/hostname')")).strip() for conn in (primary, replica)]
        if selected_backend() == "containers":
            # A container's host name is the start of its id: each server is the container started for it.
            ids = stack.container_ids  # type: ignore[attr-defined]
            assert ids["primary"].startswith(hosts[0])
            assert ids["replica-1"].startswith(hosts[1])
            assert await replica.fetchval("SELECT sender_host FROM pg_stat_wal_receiver") == "primary"
        else:
            assert hosts == [socket.gethostname()] * 2
        assert not await primary.fetchval("SELECT pg_is_in_recovery()")
        assert await replica.fetchval("SELECT pg_is_in_recovery()")
        assert await replica.fetchval("SELECT status FROM pg_stat_wal_receiver") == "streaming"

        await primary.execute("CREATE TABLE backend_probe (note text)")
        await primary.execute("INSERT INTO backend_probe VALUES ('written on the primary')")
        await wait_for_replica(stack)
        assert await replica.fetchval("SELECT note FROM backend_probe") == "written on the primary"
    finally:
        await primary.close()
        await replica.close()

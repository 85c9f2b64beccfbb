"""``ops/dev up`` on an existing run directory with other ports in the environment: a stopped
stack moves there (the replica streams from the primary's new port), a running one is refused."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from devtools.stack import Stack, free_port
from devtools.stack.ports import UsageError
from tests.fixtures.stack import own_stack, wait_for_replica

pytestmark = pytest.mark.system


def test_a_stopped_stack_moves_to_the_ports_the_environment_asks_for() -> None:
    with own_stack(replicas=1, instances=1) as stack:
        run_dir = stack.run_dir
        env = {"CATALOG_DEV_PRIMARY_PORT": str(free_port()), "CATALOG_DEV_NGINX_PORT": str(free_port())}
        running = Stack.load_or_create(run_dir, env=env)
        with pytest.raises(UsageError, match="the stack is running"):
            running.move_ports(running.pending_moves)

        stack.down()
        moved = Stack.load_or_create(run_dir, env=env)
        moved.move_ports(moved.pending_moves)  # what `ops/dev up` does first
        stack.config = moved.config  # own_stack destroys whatever the stack is at the end
        assert {m.service for m in moved.moved} == {"primary", "nginx"}
        moved.up()
        try:
            _check_moved(moved, env)
        finally:
            moved.down()  # the instance that started the apps stops (and reaps) them
        saved = Stack.load_or_create(run_dir, env={})
        assert saved.config.primary_port == moved.config.primary_port, "the move is saved"


def _check_moved(moved: Stack, env: dict[str, str]) -> None:
    c = moved.config
    assert c.primary_port == int(env["CATALOG_DEV_PRIMARY_PORT"])
    assert asyncio.run(_replicated(moved)) == ("streaming", "Moved Lamp")
    assert httpx.get(f"{c.url}/healthz").status_code == 200


async def _replicated(stack: Stack) -> tuple[str, str]:
    """A write on the primary's new port, as the replica streams it."""
    c = stack.config
    primary = await asyncpg.connect(c.superuser_dsn(c.primary_port))
    replica = await asyncpg.connect(c.superuser_dsn(c.replica_port))
    try:
        await primary.execute("UPDATE products SET name = 'Moved Lamp' WHERE id = 1")
        await wait_for_replica(stack)
        status = await replica.fetchval("SELECT status FROM pg_stat_wal_receiver")
        name = await replica.fetchval("SELECT name FROM products WHERE id = 1")
        return str(status), str(name)
    finally:
        await primary.close()
        await replica.close()

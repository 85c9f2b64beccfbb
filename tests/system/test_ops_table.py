"""Every ops command against a running stack of its own, piped at 80 columns: a readable result
with exit status 0, and the same run with --json parses as JSON (tests/ops/table.py; ops/compose
runs against its own containers in tests/containers)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from devtools.stack import Stack
from tests.fixtures.stack import own_stack
from tests.ops.table import ROWS, Row, run, with_json

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]
WITH_STACK = [row for row in ROWS if row.tool != "compose"]


@pytest.fixture(scope="module")
def stack_env() -> Iterator[dict[str, str]]:
    with own_stack() as stack:
        yield _env(stack)


def _env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_")}
    env.update(stack.config.stack_env())
    env["CATALOG_DEV_RUN_DIR"] = str(stack.run_dir)
    return env


def _args(row: Row, stack_env: dict[str, str], *, as_json: bool) -> tuple[str, ...]:
    args = with_json(row, before=False) if as_json else row.command
    # The drill reads its stack from a run directory, as ops/dev does.
    return (*args, "--run-dir", stack_env["CATALOG_DEV_RUN_DIR"]) if row.tool == "drill" else args


@pytest.mark.parametrize("row", WITH_STACK, ids=str)
def test_a_readable_result_at_80_columns(row: Row, stack_env: dict[str, str]) -> None:
    ran = run(row, _args(row, stack_env, as_json=False), stack_env)
    assert ran.code == 0, (ran.code, ran.out[-2000:], ran.err[-2000:])
    assert ran.problems(row.tool) == []
    assert ran.out.strip(), "a result, not silence"


@pytest.mark.parametrize("row", WITH_STACK, ids=str)
def test_json_is_json(row: Row, stack_env: dict[str, str]) -> None:
    ran = run(row, _args(row, stack_env, as_json=True), stack_env)
    assert ran.code == 0, (ran.code, ran.out[-2000:], ran.err[-2000:])
    assert ran.problems(row.tool) == []
    json.loads(ran.out)


def _amnesia(stack: Stack) -> list[float]:
    import httpx

    counts = []
    for url in stack.config.app_urls:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        found = [line for line in text.splitlines() if line.startswith("catalog_cache_amnesia_total")]
        counts.append(float(found[0].split()[-1]) if found else 0.0)
    return counts


def test_the_drain_and_invalidation_benchmarks_leave_the_stack_alone() -> None:
    """They run on servers of their own: the stack's relays see no amnesia, its cache's mark and
    its primary's WAL do not move (draining 20,000 events there would write megabytes)."""
    import asyncio

    import asyncpg
    import redis

    from app.core.db import lsn_to_int

    async def wal(dsn: str) -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return lsn_to_int(await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text"))
        finally:
            await conn.close()

    with own_stack(replicas=1, instances=2) as stack:
        env = _env(stack)
        primary = stack.config.superuser_dsn(stack.config.primary_port)
        cache = redis.Redis(port=stack.config.redis_port)
        try:
            mark, amnesia, before = cache.get("cache:mark"), _amnesia(stack), asyncio.run(wal(primary))
            ran = run(Row("bench", (), (), True), ("outbox", "invalidation", "--events", "20000", "--runs", "1",
                                                  "--writes", "20"), env)  # fmt: skip
            assert ran.code == 0, (ran.out[-2000:], ran.err[-2000:])
            assert "events/s" in ran.out
            assert _amnesia(stack) == amnesia, "no relay of the stack noticed anything"
            assert cache.get("cache:mark") == mark
            assert asyncio.run(wal(primary)) - before < 256 * 1024, "nothing was written on the stack's primary"
            assert redis.Redis(port=stack.config.redis_port, db=15).dbsize() == 0
        finally:
            cache.close()

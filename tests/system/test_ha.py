"""The HA topology (``ops/dev up --ha``, docs/adr/0018): Patroni decides, HAProxy and the apps follow.

One stack of this module's own: etcd, three Patroni members, HAProxy, Redis, two instances, nginx.
A planned switchover under writes: every write is answered 2xx or 503 (never another 5xx),
writes are back within 15 s, every acknowledged write is there afterwards, and the instances'
replica sets follow Patroni (the new primary leaves it, the old one joins it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from devtools.drill.ha import HA_FAULTS, run_drill_ha
from devtools.stack import Stack
from devtools.stack.ha import switchover
from tests.fixtures.stack import own_stack

pytestmark = pytest.mark.system
ADMIN = {"Authorization": "Bearer test-admin-token"}
PRODUCT = 3


@pytest.fixture(scope="module")
def ha_stack() -> Iterator[Stack]:
    with own_stack(ha=True) as stack:
        yield stack


async def _replicas(url: str) -> list[str]:
    async with httpx.AsyncClient() as client:
        return sorted((await client.get(f"{url}/readyz")).json()["replicas"])


async def _until_replicas(url: str, want: list[str], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while (got := await _replicas(url)) != want:
        assert time.monotonic() < deadline, f"replicas {got}, want {want}"
        await asyncio.sleep(0.2)


async def test_the_instances_learn_the_replicas_from_patroni(ha_stack: Stack) -> None:
    leader = ha_stack.ha.leader()
    assert leader is not None
    others = sorted(m for m in ha_stack.config.members if m != leader)
    for url in ha_stack.config.app_urls:
        await _until_replicas(url, others)


async def test_a_switchover_under_writes_loses_no_acknowledged_write(ha_stack: Stack) -> None:
    url = ha_stack.config.url
    acknowledged: list[int] = []
    answers: dict[int, int] = {}
    stop = asyncio.Event()
    last_refused = first_refused = 0.0

    async def writer() -> None:
        nonlocal last_refused, first_refused
        price = 10_000
        async with httpx.AsyncClient(timeout=5) as client:
            while not stop.is_set():
                price += 1
                try:
                    r = await client.patch(f"{url}/products/{PRODUCT}", json={"price_cents": price}, headers=ADMIN)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                answers[status] = answers.get(status, 0) + 1
                if 200 <= status < 300:
                    acknowledged.append(price)
                else:
                    first_refused = first_refused or time.monotonic()
                    last_refused = time.monotonic()
                await asyncio.sleep(0.02)

    task = asyncio.create_task(writer())
    await asyncio.sleep(1.0)
    before = ha_stack.ha.leader()
    report = await asyncio.to_thread(switchover, ha_stack.ha)
    await asyncio.sleep(3.0)
    stop.set()
    await task

    assert report["leader"] != before
    assert set(answers) <= {200, 503}, f"answers {answers}: only 2xx and 503 may be seen"
    if last_refused:
        assert last_refused - first_refused < 15.0, "writes were not back within 15 s"
    assert acknowledged, "no write was acknowledged"
    conn = await asyncpg.connect(ha_stack.config.superuser_dsn(ha_stack.config.primary_port))
    try:
        price = await conn.fetchval("SELECT price_cents FROM products WHERE id = $1", PRODUCT)
        events = await conn.fetchval("SELECT count(*) FROM outbox_processed")
    finally:
        await conn.close()
    assert price == acknowledged[-1], "the last acknowledged write is the product's price on the new primary"
    assert events is not None
    others = sorted(m for m in ha_stack.config.members if m != report["leader"])
    for app in ha_stack.config.app_urls:
        await _until_replicas(app, others)


def test_the_ha_drill_passes_every_row_and_counts_what_asynchronous_replication_loses(ha_stack: Stack) -> None:
    """ops/drill --ha, once: every fault Patroni decides about, under load, each row judged."""
    rows = {row.fault: row for row in run_drill_ha(ha_stack)}

    assert set(rows) == set(HA_FAULTS)
    for row in rows.values():
        assert row.ok, (row.fault, row.reasons, row.failures, row.notes)
        assert row.ledger_server_errors == 0, (row.fault, row.notes)
        assert row.acknowledged > 0, row.fault
        assert row.stale == 0, (row.fault, row.notes)
        assert row.drained_s is not None, row.fault
        assert row.unavailable_s is not None, row.fault
        assert row.unavailable_s < 30.0, row.fault
        assert row.writes_failed == 0, (row.fault, row.problems)
    assert rows["primary-kill"].unavailable_s < 15.0
    # A frozen primary that wakes must not take the leader key back (Debian's Patroni 3.0.2 did,
    # and the promoted member's writes were lost: tests/system/test_ha_leader_key.py).
    for moved in ("primary-freeze", "switchover", "member-loss"):
        assert rows[moved].leader_after != rows[moved].leader_before, f"{moved}: Patroni promoted another member"
    for kept in ("primary-kill", "etcd-restart", "switchover"):
        assert rows[kept].acknowledged_lost == 0, kept
    # Asynchronous: what was acknowledged while no replica received WAL is gone after the promotion,
    # and the ledger sees it (tests/system/test_ha_synchronous.py: none with synchronous_mode).
    assert rows["member-loss"].acknowledged_lost > 0, rows["member-loss"].notes
    assert not rows["member-loss"].loss_judged


def test_destroy_leaves_nothing_running(ha_stack: Stack) -> None:
    pids = [ha_stack.layout.pid(s) for s in ha_stack.config.services]
    postmasters = [
        int((ha_stack.layout.base_dir / m / "data" / "postmaster.pid").read_text().split()[0])
        for m in ha_stack.config.members
    ]
    ha_stack.destroy()
    alive = [pid for pid in [*pids, *postmasters] if pid is not None and Path(f"/proc/{pid}").exists()]
    assert alive == [], f"left running after destroy: {alive}"

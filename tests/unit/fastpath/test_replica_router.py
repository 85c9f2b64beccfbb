"""Replica choice: healthy, within the lag bound, past the reader's token LSN; else the primary and why."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from app.core.db import ReadPool
from app.fastpath.replica_router import ReadRouter, Replica, Route

PRIMARY = cast("ReadPool", object())


def _replica(name: str, *, lag_s: float = 0.0, replay_lsn: int = 100, up: bool = True) -> Replica:
    return Replica(
        name=name,
        dsn=f"postgresql://{name}",
        pool=cast("ReadPool", object()),
        up=up,
        replay_lsn=replay_lsn,
        lag_s=lag_s,
        last_ok=time.monotonic(),
    )


def test_without_replicas_the_primary_serves() -> None:
    route = ReadRouter(primary=PRIMARY).route()
    assert (route.source, route.reason, route.pool) == ("primary", "no-replica", PRIMARY)


def test_a_healthy_replica_within_the_bound_serves() -> None:
    replica = _replica("r1", lag_s=0.2)
    route = ReadRouter(primary=PRIMARY, replicas=[replica], max_lag_s=1.0).route()
    assert (route.source, route.replica, route.pool) == ("replica", replica, replica.pool)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"lag_s": 5.0}, "lag"),
        ({"up": False}, "replica-down"),
        ({"lag_s": float("inf")}, "lag"),  # no recent primary sample: lag unknown
    ],
)
def test_an_ineligible_replica_sends_reads_to_the_primary(state: dict[str, Any], reason: str) -> None:
    replica = _replica("r1", **state)
    route = ReadRouter(primary=PRIMARY, replicas=[replica], max_lag_s=1.0).route()
    assert (route.source, route.reason) == ("primary", reason)


def test_a_replica_that_stopped_answering_polls_is_down() -> None:
    replica = _replica("silent")
    replica.last_ok = time.monotonic() - 5
    assert ReadRouter(primary=PRIMARY, replicas=[replica]).route().reason == "replica-down"


def test_a_replica_sitting_out_after_a_failure_is_skipped() -> None:
    replica = _replica("failed")
    replica.skip_until = time.monotonic() + 10
    assert ReadRouter(primary=PRIMARY, replicas=[replica]).route().source == "primary"


def test_a_writer_reads_a_replica_only_once_it_has_replayed_their_commit() -> None:
    behind, ahead = _replica("behind", replay_lsn=100), _replica("ahead", replay_lsn=500)
    router = ReadRouter(primary=PRIMARY, replicas=[behind, ahead])
    for _ in range(4):  # whatever the round-robin position
        route = router.route(min_lsn=300)
        assert route.replica is ahead
    only_behind = ReadRouter(primary=PRIMARY, replicas=[behind])
    assert (only_behind.route(min_lsn=300).source, only_behind.route(min_lsn=300).reason) == ("primary", "ryw")


def test_eligible_replicas_share_the_reads() -> None:
    replicas = [_replica("r1"), _replica("r2")]
    router = ReadRouter(primary=PRIMARY, replicas=replicas)
    chosen = [router.route().replica for _ in range(6)]
    assert chosen.count(replicas[0]) == chosen.count(replicas[1]) == 3


def test_a_route_knows_whether_its_rows_include_an_lsn() -> None:
    replica = _replica("r1", replay_lsn=200)
    on_replica = Route(replica.pool, "replica", "replica", replica, replay_lsn=200)
    assert on_replica.has_replayed(200)
    assert not on_replica.has_replayed(201)
    assert Route(PRIMARY, "primary", "lag", None).has_replayed(10**12)

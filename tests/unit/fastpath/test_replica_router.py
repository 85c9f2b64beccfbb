"""Replica choice: healthy, within the lag bound, past the reader's token LSN; else the primary and why."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from app.core.db import DatabaseUnavailable, ReadPool
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


# ---------------------------------------------------------------- several replicas (ops/dev up --replicas N)


def _names(router: ReadRouter, reads: int, min_lsn: int = 0) -> list[str]:
    return [r.replica.name if r.replica else "primary" for r in (router.route(min_lsn) for _ in range(reads))]


def test_reads_spread_over_every_eligible_replica() -> None:
    router = ReadRouter(primary=PRIMARY, replicas=[_replica("r1"), _replica("r2"), _replica("r3")])
    chosen = _names(router, 9)
    assert {name: chosen.count(name) for name in set(chosen)} == {"r1": 3, "r2": 3, "r3": 3}


@pytest.mark.parametrize(
    "state",
    [{"lag_s": 5.0}, {"up": False}, {"lag_s": float("inf")}],
    ids=["lagging", "down", "lag-unknown"],
)
def test_a_lagging_or_down_replica_is_skipped_and_the_others_share_its_reads(state: dict[str, Any]) -> None:
    router = ReadRouter(
        primary=PRIMARY, replicas=[_replica("r1"), _replica("sick", **state), _replica("r3")], max_lag_s=1.0
    )
    chosen = _names(router, 8)
    assert chosen.count("r1") == chosen.count("r3") == 4
    now = time.monotonic()
    assert [router.eligible(r, now) for r in router.replicas] == [True, False, True]


def test_a_replica_that_sat_out_rejoins_the_rotation() -> None:
    r1, r2 = _replica("r1"), _replica("r2")
    r2.skip_until = time.monotonic() + 10
    router = ReadRouter(primary=PRIMARY, replicas=[r1, r2])
    assert set(_names(router, 4)) == {"r1"}
    r2.skip_until = 0.0
    assert set(_names(router, 4)) == {"r1", "r2"}


def test_a_writer_reads_any_replica_that_covers_their_token() -> None:
    replicas = [_replica("behind", replay_lsn=100), _replica("a", replay_lsn=300), _replica("b", replay_lsn=900)]
    router = ReadRouter(primary=PRIMARY, replicas=replicas)
    assert set(_names(router, 6, min_lsn=300)) == {"a", "b"}  # both cover it: both serve
    assert set(_names(router, 4, min_lsn=500)) == {"b"}
    assert set(_names(router, 6)) == {"behind", "a", "b"}  # readers without a token: everyone


def test_a_writer_whose_token_no_replica_covers_reads_the_primary() -> None:
    router = ReadRouter(primary=PRIMARY, replicas=[_replica("r1", replay_lsn=100), _replica("r2", replay_lsn=200)])
    route = router.route(min_lsn=201)
    assert (route.source, route.reason, route.pool) == ("primary", "ryw", PRIMARY)


def test_covering_the_token_is_not_enough_for_a_lagging_or_down_replica() -> None:
    ahead_but_lagging = _replica("lagging", replay_lsn=900, lag_s=5.0)
    ahead_but_down = _replica("down", replay_lsn=900, up=False)
    router = ReadRouter(primary=PRIMARY, replicas=[ahead_but_lagging, ahead_but_down, _replica("r3", replay_lsn=100)])
    assert router.route(min_lsn=500).source == "primary"
    assert set(_names(router, 3)) == {"r3"}


async def test_run_counts_reads_per_replica() -> None:
    def counted() -> list[float]:
        return [REGISTRY.get_sample_value("catalog_replica_reads_total", {"replica": r.name}) or 0.0 for r in replicas]

    replicas = [_replica("count-a"), _replica("count-b")]
    router = ReadRouter(primary=PRIMARY, replicas=replicas)
    before = counted()

    async def work(pool: ReadPool) -> ReadPool:
        return pool

    for _ in range(4):
        await router.run("product.get", work)
    assert [a - b for a, b in zip(counted(), before, strict=True)] == [2, 2]


class _Answering:
    """A pool that answers the replay-position question with ``lsn`` (text, as Postgres does)."""

    def __init__(self, lsn: str | None) -> None:
        self.lsn = lsn
        self.asked = 0

    async def fetchval(self, _query: str) -> str | None:
        self.asked += 1
        return self.lsn


class _Gone:
    async def fetchval(self, _query: str) -> None:
        raise DatabaseUnavailable("primary", "lost: ConnectionRefusedError")


async def test_a_writer_whose_token_the_samples_miss_is_served_by_a_replica_that_replayed_it_now() -> None:
    """Primary unreachable (a switchover) and every sample older than the writer's commit: a
    replica that has replayed it by now serves the read, instead of a 503."""
    caught_up, behind = _Answering("0/3E8"), _Answering("0/64")  # 1000 and 100
    replicas = [_replica("ask-a", replay_lsn=100), _replica("ask-b", replay_lsn=100)]
    replicas[0].pool, replicas[1].pool = cast("ReadPool", behind), cast("ReadPool", caught_up)
    router = ReadRouter(primary=cast("ReadPool", _Gone()), replicas=replicas)

    async def work(pool: ReadPool) -> ReadPool:
        if pool is router.primary:
            raise DatabaseUnavailable("primary", "lost: ConnectionRefusedError")
        return pool

    result, route = await router.run("product.get", work, min_lsn=1000)
    assert result is caught_up
    assert (route.reason, route.degraded) == ("primary-down", True)
    assert replicas[1].replay_lsn == 1000, "what the replica said is kept: replay only advances"


async def test_a_writer_whose_token_no_replica_has_replayed_is_refused_after_asking() -> None:
    behind = _Answering("0/64")
    replicas = [_replica("ask-c", replay_lsn=100)]
    replicas[0].pool = cast("ReadPool", behind)
    router = ReadRouter(primary=cast("ReadPool", _Gone()), replicas=replicas)

    async def work(pool: ReadPool) -> ReadPool:
        if pool is router.primary:
            raise DatabaseUnavailable("primary", "lost: ConnectionRefusedError")
        return pool

    with pytest.raises(DatabaseUnavailable):
        await router.run("product.get", work, min_lsn=1000)
    assert behind.asked == 3, "asked a few times, then refused: never older data"

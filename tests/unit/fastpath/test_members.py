"""Replica membership from Patroni's ``GET /cluster``: the router's replicas follow what it lists.

Patroni's REST API is answered here by an httpx transport speaking its documented shape (the
real Patroni answers in tests/system/test_ha.py); the code under test is the membership logic.
"""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
import pytest

from app.core.db import ReadPool
from app.fastpath.members import Member, PatroniMembers, member_dsn, replica_members
from app.fastpath.replica_router import ReadRouter

PRIMARY = cast("ReadPool", object())
TEMPLATE = "postgresql://catalog_app@127.0.0.1:45440/catalog?target_session_attrs=read-write&application_name=x"


def _member(name: str, role: str, port: int, state: str = "running", **extra: Any) -> dict[str, Any]:
    return {"name": name, "role": role, "state": state, "host": "127.0.0.1", "port": port, **extra}


class _Pool:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class _Patroni:
    """Answers ``/cluster`` with whatever ``members`` holds; ``down`` makes it refuse."""

    def __init__(self, members: list[dict[str, Any]]) -> None:
        self.members = members
        self.down = False
        self.asked = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.asked += 1
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        assert request.url.path == "/cluster"
        return httpx.Response(200, content=json.dumps({"members": self.members}))


def _members(patroni: _Patroni, router: ReadRouter) -> PatroniMembers:
    async def open_pool(dsn: str, _name: str) -> ReadPool:
        return cast("ReadPool", _Pool(dsn))

    client = httpx.AsyncClient(transport=httpx.MockTransport(patroni.handler))
    return PatroniMembers(router, ["http://127.0.0.1:48441"], TEMPLATE, open_pool, client=client)


def test_only_running_replicas_count() -> None:
    cluster = {
        "members": [
            _member("pg-1", "leader", 45441),
            _member("pg-2", "replica", 45442, lag=0),
            _member("pg-3", "sync_standby", 45443),
            _member("pg-4", "replica", 45444, state="starting"),
            _member("pg-5", "replica", 45445, tags={"noloadbalance": True}),
        ]
    }
    assert replica_members(cluster) == [Member("pg-2", "127.0.0.1", 45442), Member("pg-3", "127.0.0.1", 45443)]


def test_a_member_is_reached_at_its_own_address_as_the_primary_is() -> None:
    dsn = member_dsn(TEMPLATE, Member("pg-2", "127.0.0.1", 45442))
    assert dsn == "postgresql://catalog_app@127.0.0.1:45442/catalog?application_name=x"
    multi = "postgresql://u:pw@h1:1,h2:2/db"
    assert member_dsn(multi, Member("m", "10.0.0.9", 5432)) == "postgresql://u:pw@10.0.0.9:5432/db"


async def test_the_replicas_follow_a_failover() -> None:
    patroni = _Patroni([_member("pg-1", "leader", 45441), _member("pg-2", "replica", 45442),
                        _member("pg-3", "replica", 45443)])  # fmt: skip
    router = ReadRouter(primary=PRIMARY)
    members = _members(patroni, router)
    assert await members.refresh()
    assert [r.name for r in router.replicas] == ["pg-2", "pg-3"]
    assert router.route().source in {"primary", "replica"}  # the monitor has not sampled them yet
    pg3 = router.replicas[1]
    assert not await members.refresh()  # nothing changed: same Replica objects, same pools
    assert router.replicas[1] is pg3

    # pg-3 promoted; pg-1 comes back as a replica after pg_rewind.
    patroni.members = [_member("pg-1", "replica", 45441), _member("pg-2", "replica", 45442),
                       _member("pg-3", "leader", 45443)]  # fmt: skip
    assert await members.refresh()
    assert [r.name for r in router.replicas] == ["pg-1", "pg-2"]
    assert cast("_Pool", pg3.pool).closed  # the promoted member's read pool is closed
    assert "45441" in router.replicas[0].dsn


async def test_patroni_unreachable_keeps_the_set() -> None:
    patroni = _Patroni([_member("pg-1", "leader", 45441), _member("pg-2", "replica", 45442)])
    router = ReadRouter(primary=PRIMARY)
    members = _members(patroni, router)
    await members.refresh()
    patroni.down = True
    assert not await members.refresh()
    assert members.reachable is False
    assert [r.name for r in router.replicas] == ["pg-2"]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
async def test_a_garbled_answer_keeps_the_set(body: bytes) -> None:
    router = ReadRouter(primary=PRIMARY)
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _r: httpx.Response(200, content=body)))

    async def open_pool(dsn: str, _name: str) -> ReadPool:
        return cast("ReadPool", _Pool(dsn))

    members = PatroniMembers(router, ["http://127.0.0.1:1"], TEMPLATE, open_pool, client=client)
    assert not await members.refresh()
    assert members.reachable is False

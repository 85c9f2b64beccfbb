"""Which servers are replicas right now, as Patroni says (the HA topology, docs/adr/0018).

Where Patroni decides failover, the replicas are not a fixed list: a replica is promoted, the old
primary comes back as a replica after ``pg_rewind``, a member is added or leaves. Every
``interval_s`` :class:`PatroniMembers` asks Patroni's REST API for the cluster (``GET /cluster``;
any member answers for all of them, so the first of ``urls`` that answers will do) and makes the
read router's replica set follow it: a read pool per member Patroni calls a running replica, at
the member's own address, with the user, database and options of ``dsn_template``. A member that
leaves that set is out of rotation at once and its pool closed; the replica monitor samples
whichever members are in the set (its lag decides whether reads may use it, as for any replica).

Patroni unreachable: the set stays as it was (the monitor still marks down a member that stops
answering), and the failure is logged once until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from app.core.db import ReadPool
from app.fastpath.replica_router import ReadRouter, Replica

log = structlog.get_logger("catalog.reads")

# Roles Patroni gives a member that streams from the leader, and states in which it serves reads.
REPLICA_ROLES = frozenset({"replica", "sync_standby", "quorum_standby"})
SERVING_STATES = frozenset({"running", "streaming"})
_REQUEST_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    host: str
    port: int


def replica_members(cluster: dict[str, Any]) -> list[Member]:
    """The members of a ``GET /cluster`` answer that are running replicas (not tagged noloadbalance)."""
    found = []
    for member in cluster.get("members", []):
        tags = member.get("tags") or {}
        if (
            member.get("role") in REPLICA_ROLES
            and member.get("state") in SERVING_STATES
            and not tags.get("noloadbalance")
        ):
            found.append(Member(str(member["name"]), str(member["host"]), int(member["port"])))
    return sorted(found, key=lambda m: m.name)


def member_dsn(template: str, member: Member) -> str:
    """``template`` (a postgresql:// URL, one host or several) pointed at ``member`` alone; a
    ``target_session_attrs`` meant for the primary is dropped (the monitor checks recovery itself)."""
    parts = urlsplit(template)
    userinfo, _, _ = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@{member.host}:{member.port}" if userinfo else f"{member.host}:{member.port}"
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("target_session_attrs="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


PoolFactory = Callable[[str, str], Awaitable[ReadPool]]  # (dsn, name) -> pool


class PatroniMembers:
    """Keeps ``router.replicas`` equal to the running replicas Patroni lists."""

    def __init__(
        self,
        router: ReadRouter,
        urls: Iterable[str],
        dsn_template: str,
        open_pool: PoolFactory,
        *,
        interval_s: float = 1.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.router = router
        self.urls = [u.rstrip("/") for u in urls]
        self.dsn_template = dsn_template
        self.open_pool = open_pool
        self.interval_s = interval_s
        self._client = client or httpx.AsyncClient(timeout=_REQUEST_TIMEOUT_S)
        self._owns_client = client is None
        self.reachable: bool | None = None  # None until the first answer or failure
        self.changes = 0
        self.last_change_at: float | None = None

    async def cluster(self) -> dict[str, Any] | None:
        """The first answer of ``GET <url>/cluster`` among the urls, or None if none answers."""
        for url in self.urls:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await self._client.get(f"{url}/cluster")
                if response.status_code == 200:
                    body = response.json()
                    if isinstance(body, dict):
                        return body
        return None

    async def refresh(self) -> bool:
        """Make the router's replicas follow Patroni's; True when the set changed."""
        cluster = await self.cluster()
        if cluster is None:
            if self.reachable is not False:
                log.warning("reads.patroni_unreachable", urls=self.urls)
            self.reachable = False
            return False
        if self.reachable is False:
            log.info("reads.patroni_reachable")
        self.reachable = True
        wanted = {m.name: member_dsn(self.dsn_template, m) for m in replica_members(cluster)}
        current = {r.name: r for r in self.router.replicas}
        if {name: r.dsn for name, r in current.items()} == wanted:
            return False
        kept = [r for name, r in current.items() if wanted.get(name) == r.dsn]
        added = [
            Replica(name=name, dsn=dsn, pool=await self.open_pool(dsn, name))
            for name, dsn in sorted(wanted.items())
            if name not in current or current[name].dsn != dsn
        ]
        gone = [r for r in current.values() if r not in kept]
        self.router.replicas = sorted([*kept, *added], key=lambda r: r.name)
        self.changes += 1
        self.last_change_at = time.time()
        log.warning(
            "reads.replicas_changed",
            replicas=[r.name for r in self.router.replicas],
            added=[r.name for r in added],
            removed=[r.name for r in gone],
        )
        for replica in gone:  # out of rotation already; reads in flight on it finish or fail over
            with contextlib.suppress(Exception):
                await replica.pool.close()
        return True

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                except Exception:
                    log.exception("reads.members_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
        finally:
            if self._owns_client:
                await self._client.aclose()

"""``ops/dev failover``: promote a replica, retire the old primary, and keep every name meaningful.

After a failover "primary" is the promoted node (its port and data directory), and the promoted
replica's slot (``replica-K``: name, port) is taken by the old primary's port, rebuilt as a fresh
standby of the new primary with pg_basebackup: its data held commits the new timeline does not
have, so it cannot simply follow (that would need pg_rewind). Its old data directory is kept
beside it as ``<dir>.retired-<n>`` for inspection. Other running replicas are pointed at the new
primary (``primary_conninfo`` + reload); stopped ones are left behind and said so.

App instances need no restart: their DSNs list every node with ``target_session_attrs``
(config.py), so new sessions find whichever node is the primary, or a standby, now.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg

from devtools.stack.config import StackError
from devtools.stack.stack import Stack
from devtools.stack.system import pg_bindir

# The timeline WAL is written on now (pg_control_checkpoint() says so only after a checkpoint).
_TIMELINE = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"


@dataclass
class FailoverReport:
    promoted: str  # the replica slot whose node became the primary
    primary_port: int
    timeline: int
    promote_s: float
    rebuilt: str | None = None  # the slot the old primary's port now serves as a standby
    followed: list[str] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)


async def _fetchval(port: int, query: str) -> object:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout=5)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def _received(stack: Stack, replica: str) -> int:
    """How much WAL ``replica`` holds (received or replayed): promotion replays all of it."""
    value = asyncio.run(
        _fetchval(
            stack.config.port_of(replica),
            "SELECT (greatest(coalesce(pg_last_wal_receive_lsn(), '0/0'), "
            "coalesce(pg_last_wal_replay_lsn(), '0/0')) - '0/0')::bigint",
        )
    )
    return int(str(value))


def choose_replica(stack: Stack, target: str | None) -> str:
    """The replica to promote: ``target``, else the running one holding the most WAL (so every
    other replica is behind it and can follow the new timeline)."""
    running = [r for r in stack.config.replicas if stack.running(r)]
    if target is not None:
        target = "replica-1" if target == "replica" else target
        if target not in stack.config.replicas:
            raise StackError(f"{target} is not a replica of this stack ({', '.join(stack.config.replicas)})")
        if target not in running:
            raise StackError(f"{target} is not running: start it, or promote another replica")
        return target
    if not running:
        raise StackError(
            "no replica to promote: none is running (`ops/dev status`); start one with "
            "`ops/dev start replica-1`, or bring the primary back with `ops/dev start primary`"
        )
    return max(running, key=lambda r: _received(stack, r))


def failover(stack: Stack, target: str | None = None) -> FailoverReport:
    """Stop the primary as a crash would, promote a replica, and record the new topology."""
    config, layout, host = stack.config, stack.layout, stack.host
    promoted = choose_replica(stack, target)
    slot = int(promoted.removeprefix("replica-")) - 1
    old_port, old_dir = config.primary_port, layout.data_dir("primary")
    new_port, new_dir = config.port_of(promoted), layout.data_dir(promoted)

    # The old primary goes first, hard (as a failure would take it): never two primaries at once.
    if stack.running("primary"):
        host.say("  stopping the primary (immediate, as a crash)")
        stack.postgres.stop("primary", mode="immediate")
    started = time.monotonic()
    host.say(f"  promoting {promoted} (port {new_port})")
    host.run(host.as_postgres([str(pg_bindir() / "pg_ctl"), "-D", str(new_dir), "-w", "-t", "60", "promote"]))
    promote_s = time.monotonic() - started
    timeline = int(str(asyncio.run(_fetchval(new_port, _TIMELINE))))

    # Swap the names: "primary" is the promoted node; the promoted replica's slot takes the old
    # primary's port and directory (rebuilt below), keeping the old data aside.
    config.failovers += 1
    retired = old_dir.with_name(f"{old_dir.name}.retired-{config.failovers}")
    if old_dir.exists():
        old_dir.rename(retired)
    config.primary_port, config.replica_ports[slot] = new_port, old_port
    config.data_dirs["primary"] = new_dir.name
    config.data_dirs[promoted] = old_dir.name
    stack.save()
    report = FailoverReport(promoted=promoted, primary_port=new_port, timeline=timeline, promote_s=promote_s)

    conninfo = f"host=127.0.0.1 port={new_port} user=postgres application_name={{name}}"
    for replica in config.replicas:
        if replica == promoted:
            continue
        if not stack.running(replica):
            report.left_behind.append(replica)
            continue
        stmt = f"ALTER SYSTEM SET primary_conninfo = '{conninfo.format(name=replica)}'"
        asyncio.run(_fetchval(config.port_of(replica), stmt))
        asyncio.run(_fetchval(config.port_of(replica), "SELECT pg_reload_conf()"))
        report.followed.append(replica)

    host.say(f"  rebuilding {promoted} on port {old_port} as a standby of the new primary")
    stack.postgres.init_replica(promoted)
    stack.postgres.start(promoted)
    report.rebuilt = promoted
    return report

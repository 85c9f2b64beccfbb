"""The stack a drill runs against: its endpoints, whether it is up, and putting it back together.

Endpoints come from the stack's own config through the ``stack.env`` contract
(``StackConfig.stack_env``), so the load, the probes and the faults always aim at the same stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass

import asyncpg
import httpx

from devtools.stack import Stack

READY_BOUND_S = 60.0


class StackDownError(RuntimeError):
    """The stack is not (all) running; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # nginx
    app_urls: list[str]  # each instance directly
    primary_dsn: str  # superuser: the drill reads the truth and injects faults with it
    replica_dsn: str
    redis_url: str
    admin_token: str
    redis_cluster: bool = False

    @classmethod
    def of(cls, stack: Stack) -> Target:
        env = stack.config.stack_env()
        return cls(
            url=env["CATALOG_URL"],
            app_urls=env["CATALOG_APP_URLS"].split(","),
            primary_dsn=env["CATALOG_PRIMARY_DSN"],
            replica_dsn=env["CATALOG_REPLICA_DSNS"].split(",")[0],
            redis_url=env["CATALOG_REDIS_URL"],
            admin_token=env["CATALOG_ADMIN_TOKEN"],
            redis_cluster=env.get("CATALOG_REDIS_CLUSTER") == "true",
        )


def check_running(stack: Stack) -> None:
    stopped = [s for s in stack.config.services if not stack.running(s)]
    if stopped:
        raise StackDownError(f"the stack in {stack.run_dir} is not running (stopped: {', '.join(stopped)})")


async def _ready(client: httpx.AsyncClient, url: str, *, fully: bool) -> bool:
    """``/readyz`` answers with the primary ok (``fully``: and every other dependency too)."""
    try:
        body = (await client.get(f"{url}/readyz")).json()
    except (httpx.HTTPError, ValueError):
        return False
    if fully:
        return bool(body.get("status") == "ok")
    return bool(body.get("primary", {}).get("ok"))


async def wait_ready(target: Target, bound_s: float, *, fully: bool = False) -> list[str]:
    """Poll every instance's ``/readyz`` until each is ready; returns the instances that never were."""
    deadline = time.monotonic() + bound_s
    waiting = list(target.app_urls)
    async with httpx.AsyncClient(timeout=2.0) as client:
        while waiting and time.monotonic() < deadline:
            ready = await asyncio.gather(*(_ready(client, url, fully=fully) for url in waiting))
            waiting = [url for url, ok in zip(waiting, ready, strict=True) if not ok]
            if waiting:
                await asyncio.sleep(0.2)
    return waiting


async def _undo_leftovers(stack: Stack, target: Target) -> None:
    """Faults a drill killed mid-phase could leave behind: Redis stopped by SIGSTOP, replay paused.
    Both undo operations are harmless when there is nothing to undo.
    """
    for node in stack.config.redis_nodes:
        pid = stack.layout.pid(node)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        conn = await asyncpg.connect(target.replica_dsn, timeout=2.0)
        try:
            if await conn.fetchval("SELECT pg_is_in_recovery() AND pg_is_wal_replay_paused()"):
                await conn.execute("SELECT pg_wal_replay_resume()")
        finally:
            await conn.close()


async def make_whole(stack: Stack, target: Target, bound_s: float = READY_BOUND_S) -> list[str]:
    """Start whatever is not running and wait until every instance reports its primary ok.

    Returns notes about what had to be done; raises :class:`StackDownError` if the instances do not
    become ready within ``bound_s``. Then waits a little longer (best effort) for every dependency,
    so the next fault's baseline starts from a settled stack.
    """
    notes = []
    for service in stack.config.services:  # in start order: databases, Redis, instances, nginx
        if not stack.running(service):
            await asyncio.to_thread(stack.start, service)
            notes.append(f"{service} was not running: started it")
    await _undo_leftovers(stack, target)
    started = time.monotonic()
    not_ready = await wait_ready(target, bound_s)
    if not_ready:
        raise StackDownError(f"instances not ready after {bound_s:.0f} s: {', '.join(not_ready)}")
    unsettled = await wait_ready(target, min(15.0, bound_s), fully=True)
    if unsettled:
        notes.append(f"started with degraded instances: {', '.join(unsettled)}")
    elif (took := time.monotonic() - started) > 1.0:
        notes.append(f"stack took {took:.1f} s to be ready before the phase")
    return notes

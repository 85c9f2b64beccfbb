"""Servers and databases of the benchmarks' own, so a benchmark never disturbs a running stack.

A benchmark that drains an outbox or writes into Redis next to a live stack shares its servers'
positions and memory with the stack's relays (the cache's marks are primary positions, ADR
0009): the drain and invalidation sections therefore start a Postgres and a Redis of their own,
on free ports, in a temporary directory removed afterwards, and need no stack at all.

Write figures only count on a Postgres that waits for the disk. The dev stack runs with fsync
and full_page_writes off (its data is disposable), which makes every commit nearly free and
hides exactly what the write side must survive, each commit waiting for its WAL flush; so
``ops/bench writes`` asks for a durable one. ``seed`` loads into a scratch database on the
stack's primary (a COPY disturbs no relay).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from app.core.migrate import create_database, drop_database, migrate
from devtools.stack.config import free_port, port_open
from devtools.stack.system import Host, last_log_line, pg_bindir, wait_for, which

__all__ = ["drop_database", "scratch_database", "scratch_postgres", "scratch_redis"]


async def scratch_database(admin_dsn: str, name: str) -> str:
    """A freshly migrated database ``name`` (dropped first if it exists); returns its DSN."""
    dsn = await create_database(admin_dsn, name, replace=True)
    await migrate(dsn)
    return dsn


# Durable: every commit waits for its WAL record on disk. Sized like the dev stack otherwise.
DURABLE_SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "wal_level": "replica",
    "max_connections": "300",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    "log_min_messages": "warning",
}
_HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\n"


# Like the dev stack's servers (disposable data: no fsync), for what is not about durability.
DISPOSABLE_SETTINGS: dict[str, str] = {
    **DURABLE_SETTINGS,
    "fsync": "off",
    "full_page_writes": "off",
}


@contextlib.contextmanager
def scratch_postgres(*, durable: bool, host: Host | None = None) -> Iterator[str]:
    """A Postgres of the benchmark's own on a free loopback port for as long as the block runs
    (``durable``: fsync, synchronous_commit and full_page_writes on); yields the superuser DSN of
    its ``postgres`` database. Stopped and removed at the end."""
    host = host or Host(quiet=True)
    base = Path(tempfile.mkdtemp(prefix="catalog-bench-pg-", dir="/tmp"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir(mode=0o700)
    if host.is_root:
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(base, "postgres", "postgres")
    port = free_port()
    log = base / "postgres.log"
    settings = DURABLE_SETTINGS if durable else DISPOSABLE_SETTINGS
    conf = "".join(f"{name} = '{value}'\n" for name, value in settings.items())
    try:
        initdb = [str(pg_bindir() / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8"]  # fmt: skip
        host.run(host.as_postgres(initdb))
        host.write_as_postgres(data / "pg_hba.conf", _HBA)
        host.write_as_postgres(
            data / "postgresql.conf",
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{base}'\n{conf}",
            append=True,
        )
        pg_ctl = [str(pg_bindir() / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"]
        if host.run(host.as_postgres(pg_ctl), check=False).returncode != 0:
            raise RuntimeError(f"the benchmark's Postgres did not start{last_log_line(log)}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = [str(pg_bindir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"]
        if (data / "postmaster.pid").exists() or host.is_root:
            host.run(host.as_postgres(stop), check=False)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def scratch_redis() -> Iterator[str]:
    """A Redis of the benchmark's own on a free loopback port (no persistence); yields its URL.
    Its process is the block's: terminated and reaped at the end."""
    port = free_port()
    proc = subprocess.Popen(
        [which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), "the benchmark's Redis", timeout=15)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

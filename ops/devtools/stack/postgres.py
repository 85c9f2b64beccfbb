"""The Postgres primary (initdb) and its streaming replicas (pg_basebackup), run with pg_ctl."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from devtools.stack.config import StackConfig, ensure_port_free
from devtools.stack.layout import Layout
from devtools.stack.system import Host, pg_bindir

_HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
# Appended once to postgresql.conf; our settings live in catalog.conf so they can be rewritten whole.
_INCLUDE = "include_if_exists = 'catalog.conf'\n"


# Every node's settings, on local binaries and in containers (tests/fixtures/containers.py).
SERVER_SETTINGS: dict[str, str] = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "wal_keep_size": "1GB",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "max_connections": "300",
    "shared_buffers": "256MB",
    "fsync": "off",
    # fsync is off (disposable data), so a synchronous commit costs little, and WAL reaches
    # the replica at commit rather than at the next WAL-writer round (up to 200 ms later).
    "synchronous_commit": "on",
    "full_page_writes": "off",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "wal_receiver_status_interval": "1s",
    "max_standby_streaming_delay": "30s",
    "log_min_messages": "warning",
}


def settings_conf() -> str:
    """:data:`SERVER_SETTINGS` as postgresql.conf lines."""
    return "".join(f"{name} = '{value}'\n" for name, value in SERVER_SETTINGS.items())


@dataclass
class Postgres:
    config: StackConfig
    layout: Layout
    host: Host

    def _conf(self, port: int) -> str:
        return "\n".join(
            [
                "# Written by the catalog dev stack.",
                "listen_addresses = '127.0.0.1'",
                f"port = {port}",
                f"unix_socket_directories = '{self.layout.base_dir / 'sock'}'",
                settings_conf(),
            ]
        )

    def _write_conf(self, service: str) -> None:
        data = self.layout.data_dir(service)
        # Written through the postgres user: the data directory is private to it.
        self.host.write_as_postgres(data / "catalog.conf", self._conf(self.config.port_of(service)))
        main_conf = data / "postgresql.conf"
        if _INCLUDE not in self.host.read_as_postgres(main_conf):
            self.host.write_as_postgres(main_conf, _INCLUDE, append=True)

    def _initialised(self, data: Path) -> bool:
        return data.exists() and self.host.is_file_as_postgres(data / "PG_VERSION")

    def _new_data_dir(self, data: Path) -> None:
        data.mkdir(mode=0o700, exist_ok=True)
        if self.host.is_root:
            shutil.chown(data, "postgres", "postgres")

    def init_primary(self) -> None:
        data = self.layout.data_dir("primary")
        if (data / "PG_VERSION").exists() or self._initialised(data):
            return
        self._new_data_dir(data)
        self.host.say("  initdb primary")
        initdb = [
            str(pg_bindir() / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
        self.host.run(self.host.as_postgres(initdb))
        self.host.write_as_postgres(data / "pg_hba.conf", _HBA)
        self._write_conf("primary")

    def init_replica(self, service: str) -> None:
        """A streaming replica of the running primary, copied with pg_basebackup (once)."""
        data = self.layout.data_dir(service)
        if self._initialised(data):
            return
        if data.exists():  # a half-made copy from an interrupted basebackup
            shutil.rmtree(data)
        self._new_data_dir(data)
        self.host.say(f"  pg_basebackup {service}")
        basebackup = [
            str(pg_bindir() / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.config.primary_port),
            "-U",
            "postgres",
            "-D",
            str(data),
            "-R",  # writes standby.signal and primary_conninfo: the copy starts as a streaming replica
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]
        self.host.run(self.host.as_postgres(basebackup))
        self._write_conf(service)

    def repoint(self, replica: str, old_port: int, new_port: int) -> None:
        """A stopped replica streams from the primary's new port (pg_basebackup -R and failovers
        keep ``primary_conninfo`` in postgresql.auto.conf)."""
        auto = self.layout.data_dir(replica) / "postgresql.auto.conf"
        if not self.host.is_file_as_postgres(auto):
            return
        lines = self.host.read_as_postgres(auto).splitlines()
        fixed = [
            re.sub(rf"\bport={old_port}\b", f"port={new_port}", line) if line.startswith("primary_conninfo") else line
            for line in lines
        ]
        self.host.write_as_postgres(auto, "\n".join(fixed) + "\n")

    def start(self, service: str) -> None:
        if self.layout.running(service):
            return
        ensure_port_free(self.config, service)
        self._write_conf(service)  # settings take effect at (re)start
        pg_ctl = [
            str(pg_bindir() / "pg_ctl"),
            "-D",
            str(self.layout.data_dir(service)),
            "-l",
            str(self.layout.logs_dir / f"{service}.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
        self.host.run(self.host.as_postgres(pg_ctl))

    def stop(self, service: str, mode: str = "fast") -> None:
        if not self.layout.running(service):
            return
        pg_ctl = [
            str(pg_bindir() / "pg_ctl"),
            "-D",
            str(self.layout.data_dir(service)),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "stop",
        ]
        self.host.run(self.host.as_postgres(pg_ctl), check=False)

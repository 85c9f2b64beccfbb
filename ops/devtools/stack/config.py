"""What a stack is: its ports, secrets and directories (persisted as ``.run/stack.json``), and the
environments it hands out: ``.run/stack.env`` for tools and one per app instance.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

# This file is ops/devtools/stack/config.py: three levels up is the repository root.
PROJECT_DIR = Path(__file__).resolve().parents[3]
APP_ROLE = "catalog_app"
DB_NAME = "catalog"
# Three masters and a replica each: what a failover drill needs, small enough for a laptop.
REDIS_CLUSTER_NODES = 6
# A cluster node also listens on its bus port, its own port + 10000 (redis-server's default).
REDIS_BUS_OFFSET = 10_000


class StackError(RuntimeError):
    """Something the user has to fix (a missing binary, a port in use); the message says what."""


class StackConfig(msgspec.Struct, kw_only=True):
    run_dir: str
    base_dir: str
    primary_port: int = 55432
    replica_ports: list[int] = msgspec.field(default_factory=lambda: [55433])
    redis_port: int = 56379  # with redis_cluster: the first node's; the others follow it
    redis_cluster: bool = False
    app_ports: list[int] = msgspec.field(default_factory=lambda: [8001, 8002])
    nginx_port: int = 8080
    admin_token: str = ""
    ryw_secret: str = ""
    products: int = 10_000
    categories: int = 16
    max_body_bytes: int = 65_536
    proxy_read_timeout: str = "15s"
    # Data directory per Postgres service, where it is not the service's own (after a failover the
    # service named "primary" is the node that was a replica; layout.py).
    data_dirs: dict[str, str] = msgspec.field(default_factory=dict)
    failovers: int = 0
    # The HA topology (`ops/dev up --ha`, docs/adr/0018): etcd, Postgres members managed by
    # Patroni, HAProxy on ``primary_port`` sending sessions to whichever member Patroni made the
    # primary. ``replica_ports`` are then unused: the apps learn the replicas from Patroni.
    ha: bool = False
    synchronous_mode: bool = False  # Patroni's: a COMMIT waits for one replica (docs/faults.md)
    etcd_port: int = 52379  # its peer port is the next one
    member_ports: list[int] = msgspec.field(default_factory=lambda: [55441, 55442, 55443])
    patroni_api_port: int = 58441  # member pg-N's REST API listens on this + N - 1

    @property
    def replica_port(self) -> int:
        """The first replica's port (the one a single-replica stack has)."""
        return self.replica_ports[0]

    @property
    def replicas(self) -> tuple[str, ...]:
        return tuple(f"replica-{i + 1}" for i in range(len(self.replica_ports)))

    @property
    def apps(self) -> tuple[str, ...]:
        return tuple(f"app-{i + 1}" for i in range(len(self.app_ports)))

    @property
    def redis_nodes(self) -> tuple[str, ...]:
        """``redis``, or the cluster's nodes ``redis-1..6`` (which are masters is the cluster's say)."""
        if not self.redis_cluster:
            return ("redis",)
        return tuple(f"redis-{i + 1}" for i in range(REDIS_CLUSTER_NODES))

    @property
    def members(self) -> tuple[str, ...]:
        """The Patroni-managed Postgres members of an HA stack, ``pg-1..N``."""
        return tuple(f"pg-{i + 1}" for i in range(len(self.member_ports))) if self.ha else ()

    @property
    def databases(self) -> tuple[str, ...]:
        """The services that are Postgres or decide about it, in start order."""
        if self.ha:
            return ("etcd", *self.members, "haproxy")
        return ("primary", *self.replicas)

    @property
    def services(self) -> tuple[str, ...]:
        return (*self.databases, *self.redis_nodes, *self.apps, "nginx")

    def api_port_of(self, member: str) -> int:
        return self.patroni_api_port + int(member.removeprefix("pg-")) - 1

    @property
    def patroni_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.api_port_of(m)}" for m in self.members]

    def port_of(self, service: str) -> int:
        kind, _, number = service.rpartition("-")
        if kind and number.isdigit():
            index = int(number) - 1
            numbered = {"app": self.app_ports, "replica": self.replica_ports, "pg": self.member_ports}
            return self.redis_port + index if kind == "redis" else numbered[kind][index]
        ports = {"primary": self.primary_port, "redis": self.redis_port, "nginx": self.nginx_port,
                 "etcd": self.etcd_port, "haproxy": self.primary_port}  # fmt: skip
        return ports[service]

    def bus_port_of(self, service: str) -> int | None:
        """A Redis Cluster node's cluster bus port; None for every other service."""
        if self.redis_cluster and service.startswith("redis-"):
            return self.port_of(service) + REDIS_BUS_OFFSET
        return None

    def ports_of(self, service: str) -> list[int]:
        """Every port ``service`` listens on: its own, a cluster node's bus port, a Patroni
        member's REST API, etcd's peer port."""
        if service.startswith("pg-"):
            return [self.port_of(service), self.api_port_of(service)]
        if service == "etcd":
            return [self.etcd_port, self.etcd_port + 1]
        bus = self.bus_port_of(service)
        return [self.port_of(service), *([bus] if bus is not None else [])]

    def check_ports(self) -> None:
        """Refuse a config in which two services share a port (a follow-on port or a cluster bus
        port landing on another's), or a cluster node whose bus port would pass 65535."""
        owners: dict[int, str] = {}
        for service in self.services:
            for port in self.ports_of(service):
                if port > 65535:
                    raise StackError(
                        f"{service} on port {self.port_of(service)} would need cluster bus port {port} "
                        f"(port + {REDIS_BUS_OFFSET}), past 65535; set {port_variable(service)} "
                        f"to at most {65535 - REDIS_BUS_OFFSET - REDIS_CLUSTER_NODES + 1}"
                    )
                if port in owners:
                    raise StackError(
                        f"{owners[port]} and {service} would both use port {port}; set {port_variable(service)}"
                    )
                owners[port] = service

    def superuser_dsn(self, port: int, db: str = DB_NAME) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{db}"

    def app_dsn(self, port: int, db: str = DB_NAME) -> str:
        return f"postgresql://{APP_ROLE}@127.0.0.1:{port}/{db}"

    @property
    def postgres_ports(self) -> list[int]:
        return [self.primary_port, *self.replica_ports]

    def app_primary_dsn(self) -> str:
        """Every node, first the primary; the session goes to whichever is the primary when it
        connects, so a running instance follows ``ops/dev failover`` (docs/adr/0014). In the HA
        topology: HAProxy, which follows Patroni (docs/adr/0018)."""
        if self.ha:
            return self.app_dsn(self.primary_port)
        return _multi_host(APP_ROLE, self.postgres_ports, "primary")

    def app_replica_dsn(self, index: int) -> str:
        """Replica ``index`` (0-based), then the primary's node, whichever is a standby: after a
        failover that promotes this replica, its slot finds the old primary rebuilt as a standby.
        Not every node: a stopped replica must leave rotation, not borrow another's standby."""
        return _multi_host(APP_ROLE, [self.replica_ports[index], self.primary_port], "standby")

    @property
    def redis_url(self) -> str:
        """The Redis; for a cluster every node, so a client started while one is down finds the others."""
        nodes = ",".join(f"127.0.0.1:{self.port_of(node)}" for node in self.redis_nodes)
        return f"redis://{nodes}/0" if self.redis_cluster else f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def app_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.app_ports]

    def stack_env(self) -> dict[str, str]:
        """The public contract of ``.run/stack.env`` (README.md, "Fresh machine")."""
        return {
            "CATALOG_URL": self.url,
            "CATALOG_APP_URLS": ",".join(self.app_urls),
            "CATALOG_PRIMARY_DSN": self.superuser_dsn(self.primary_port),
            "CATALOG_REPLICA_DSNS": ",".join(self.superuser_dsn(p) for p in self.replica_ports) if not self.ha else "",
            "CATALOG_REDIS_URL": self.redis_url,
            "CATALOG_ADMIN_TOKEN": self.admin_token,
            **self.redis_cluster_env,
            **self.ha_env,
        }

    @property
    def ha_env(self) -> dict[str, str]:
        return {"CATALOG_REPLICA_PATRONI_URLS": ",".join(self.patroni_urls)} if self.ha else {}

    @property
    def redis_cluster_env(self) -> dict[str, str]:
        return {"CATALOG_REDIS_CLUSTER": "true"} if self.redis_cluster else {}

    def app_env(self, index: int) -> dict[str, str]:
        """Environment of app instance ``index`` (0-based): least-privilege role, dev-stack flags."""
        return {
            "CATALOG_ENV": "development",
            "CATALOG_INSTANCE_NAME": f"app-{index + 1}",
            "CATALOG_PRIMARY_DSN": self.app_primary_dsn(),
            "CATALOG_REPLICA_DSNS": ""
            if self.ha
            else ",".join(self.app_replica_dsn(i) for i in range(len(self.replica_ports))),
            **self.ha_env,
            "CATALOG_REDIS_URL": self.redis_url,
            "CATALOG_ADMIN_TOKEN": self.admin_token,
            "CATALOG_RYW_SECRET": self.ryw_secret,
            "CATALOG_RYW_COOKIE_SECURE": "false",  # plain http on loopback
            "CATALOG_DEBUG_HEADERS": "true",
            "CATALOG_MAX_BODY_BYTES": str(self.max_body_bytes),
            "CATALOG_LOG_FORMAT": "json",
            **self.redis_cluster_env,
        }


def _multi_host(user: str, ports: list[int], attrs: str, db: str = DB_NAME) -> str:
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    return f"postgresql://{user}@{hosts}/{db}?target_session_attrs={attrs}"


def port_variable(service: str) -> str:
    """The environment variable that sets ``service``'s port (the first replica keeps its old name)."""
    if service == "replica-1":
        return "CATALOG_DEV_REPLICA_PORT"
    if service.startswith("redis"):
        return "CATALOG_DEV_REDIS_PORT"  # cluster nodes take the ports after it
    if service == "haproxy":
        return "CATALOG_DEV_PRIMARY_PORT"  # it holds the primary's address
    return f"CATALOG_DEV_{service.upper().replace('-', '_')}_PORT"


def topology_ports(
    env: Mapping[str, str], replicas: int, instances: int, known: StackConfig | None = None
) -> dict[str, list[int]]:
    """Ports of ``replicas`` replicas and ``instances`` app instances. Each comes from its variable
    (``CATALOG_DEV_REPLICA_PORT`` for the first replica, then ``CATALOG_DEV_REPLICA_2_PORT``, ...;
    ``CATALOG_DEV_APP_1_PORT``, ...), else from ``known`` (the stack's stored config), else it is
    the port after the previous one of its kind (first replica 55433, first app 8001)."""
    known = known or StackConfig(run_dir="", base_dir="")

    def ports(prefix: str, count: int, stored: list[int]) -> list[int]:
        out: list[int] = []
        for i in range(1, count + 1):
            raw = env.get(port_variable(f"{prefix}-{i}"))
            out.append(int(raw) if raw else stored[i - 1] if i <= len(stored) else out[-1] + 1)
        return out

    return {
        "replica_ports": ports("replica", replicas, known.replica_ports),
        "app_ports": ports("app", instances, known.app_ports),
    }


def default_base_dir(run_dir: Path) -> Path:
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:10]  # noqa: S324  (a name, not security)
    return Path("/tmp") / f"catalog-{os.getuid()}-{digest}"  # noqa: S108  (world-traversable on purpose)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def port_holder(port: int) -> str:
    """Who listens on ``port``, as ``ss`` names it ("redis-server pid 1234"), or "another program"."""
    if shutil.which("ss") is None:
        return "another program"
    found = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False, timeout=5
    ).stdout
    # users:(("redis-server",pid=1234,fd=6))
    start = found.find('users:(("')
    if start < 0:
        return "another program"
    name, _, rest = found[start + len('users:(("') :].partition('"')
    pid = rest.split("pid=", 1)[1].split(",", 1)[0] if "pid=" in rest else ""
    return f"{name} (pid {pid})" if pid else name


@dataclass(frozen=True)
class PortConflict:
    port: int
    service: str
    what: str  # "for primary", "the cluster bus port of redis-1"
    variable: str
    holder: str

    def __str__(self) -> str:
        return f"port {self.port} ({self.what}, {self.variable}) is in use by {self.holder}"


def port_conflicts(config: StackConfig, service: str) -> list[PortConflict]:
    """The ports of ``service`` (a cluster node's bus port too) another program holds."""
    found = []
    for port in config.ports_of(service):
        if port_open(port):
            what = f"for {service}" if port == config.port_of(service) else f"the {_second_port(service)} of {service}"
            found.append(PortConflict(port, service, what, port_variable(service), port_holder(port)))
    return found


def _second_port(service: str) -> str:
    if service.startswith("pg-"):
        return "Patroni REST API port"
    return "peer port" if service == "etcd" else "cluster bus port"


def refuse_conflicts(conflicts: list[PortConflict]) -> None:
    """One conflict: one line naming port, holder and the variable that moves it; several: a line each."""
    if not conflicts:
        return
    variables = sorted({c.variable for c in conflicts})
    unset = [v for v in variables if not os.environ.get(v)]
    moves = " (a stopped stack moves to it)" if unset else ""
    if len(conflicts) == 1:
        c = conflicts[0]
        where = f"{c.variable}={os.environ[c.variable]}" if os.environ.get(c.variable) else f"{c.variable} not set"
        raise StackError(
            f"port {c.port} ({c.what}, {where}) is in use by {c.holder}: "
            f"stop that program, or set {c.variable} to a free port{moves}"
        )
    lines = "\n".join(f"  {c}" for c in conflicts)
    raise StackError(
        f"{len(conflicts)} ports are in use by other programs:\n{lines}\n"
        f"stop those programs, or set {', '.join(variables)} to free ports{moves.replace('it)', 'them)')}"
    )


def ensure_port_free(config: StackConfig, service: str) -> None:
    """Refuse to start ``service`` on a port another program holds (a cluster node's bus port
    too), naming the port, its holder and the variable that moves it."""
    refuse_conflicts(port_conflicts(config, service))

"""The local stack: Postgres primary + N streaming replicas, Redis, M app instances and nginx.

Used by ``ops/dev`` and by the test suite (on free ports, in a temporary directory), so the
stack the tests exercise is the stack developers run. Everything runs from system binaries
under one run directory. ``Stack`` decides what runs in which order; each service's module
knows how to start and stop it.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from devtools.stack import ports
from devtools.stack.apps import Apps
from devtools.stack.config import (
    StackConfig,
    StackError,
    default_base_dir,
    port_conflicts,
    port_open,
    refuse_conflicts,
    topology_ports,
)
from devtools.stack.database import prepare_database
from devtools.stack.ha import HA, check_ha_binaries
from devtools.stack.layout import Layout, is_postgres
from devtools.stack.nginx import Nginx
from devtools.stack.postgres import Postgres
from devtools.stack.redis import Redis
from devtools.stack.system import Host, check_binaries


@dataclass
class Stack:
    """Brings services up and down; every method is idempotent."""

    config: StackConfig
    python: str = sys.executable
    quiet: bool = False
    host: Host = field(init=False, repr=False)
    layout: Layout = field(init=False, repr=False)
    postgres: Postgres = field(init=False, repr=False)
    redis: Redis = field(init=False, repr=False)
    apps: Apps = field(init=False, repr=False)
    nginx: Nginx = field(init=False, repr=False)
    ha: HA = field(init=False, repr=False)
    moved: list[ports.Move] = field(default_factory=list, init=False, repr=False)  # ports taken from the environment
    pending_moves: list[ports.Move] = field(default_factory=list, init=False, repr=False)  # asked for, not yet taken

    def __post_init__(self) -> None:
        self.host = Host(quiet=self.quiet)
        self.layout = Layout(Path(self.config.run_dir), Path(self.config.base_dir), self.config.data_dirs)
        parts = (self.config, self.layout, self.host)
        self.postgres = Postgres(*parts)
        self.redis = Redis(*parts)
        self.apps = Apps(*parts, python=self.python)
        self.nginx = Nginx(*parts)
        self.ha = HA(*parts)

    @property
    def run_dir(self) -> Path:
        return self.layout.run_dir

    @property
    def base_dir(self) -> Path:
        return self.layout.base_dir

    @property
    def logs_dir(self) -> Path:
        return self.layout.logs_dir

    # ---------------------------------------------------------------- config persistence

    @classmethod
    def load_or_create(
        cls,
        run_dir: Path,
        *,
        replicas: int | None = None,
        instances: int | None = None,
        redis_cluster: bool | None = None,
        ha: bool | None = None,
        synchronous_mode: bool | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: object,
    ) -> Stack:
        """The stack described by ``run_dir/stack.json``, created with fresh secrets if missing.

        ``replicas`` and ``instances`` (None: as the stack has them, else 1 and 2) take their ports
        from ``env`` (:func:`topology_ports`). A stack with data keeps the numbers it was made
        with: asking for others is refused, never ignored. One without data (destroyed) takes them.
        """
        env = {} if env is None else env
        ports.check_port_variables(env)
        path = run_dir / "stack.json"
        if not path.exists():
            topology = topology_ports(env, replicas or 1, instances or 2)
            config = msgspec.convert(
                {
                    "run_dir": str(run_dir.resolve()),
                    "base_dir": str(default_base_dir(run_dir)),
                    "admin_token": secrets.token_urlsafe(24),
                    "ryw_secret": secrets.token_urlsafe(32),
                    "redis_cluster": bool(redis_cluster),
                    "ha": bool(ha),
                    "synchronous_mode": bool(synchronous_mode),
                    **overrides,
                    **topology,
                },
                StackConfig,
            )
            stack = cls(config)
            stack.move_ports(ports.wanted_moves(config, env))  # a port variable wins over the defaults
            return stack
        stored = msgspec.json.decode(path.read_bytes())
        if "replica_port" in stored:  # written before a stack could have several replicas
            stored.setdefault("replica_ports", [stored.pop("replica_port")])
        config = msgspec.convert(stored, StackConfig)
        if redis_cluster is not None and redis_cluster != config.redis_cluster:
            if Path(config.base_dir).exists():
                kind = "a Redis Cluster" if config.redis_cluster else "a single Redis"
                raise StackError(f"this stack has {kind}; run `ops/dev destroy` first to change it")
            config = msgspec.structs.replace(config, redis_cluster=redis_cluster)
        for name, asked in (("ha", ha), ("synchronous_mode", synchronous_mode)):
            if asked and not getattr(config, name):
                if Path(config.base_dir).exists():
                    what = "the HA topology" if name == "ha" else "Patroni's synchronous mode"
                    raise StackError(f"this stack was made without {what}; run `ops/dev destroy` first")
                config = msgspec.structs.replace(config, **{name: True})
        have = (len(config.replica_ports), len(config.app_ports))
        want = (replicas or have[0], instances or have[1])
        if want != have:
            if Path(config.base_dir).exists():
                same = f"ops/dev up --replicas {have[0]} --instances {have[1]}"
                raise StackError(
                    f"this stack has {_count(have[0], 'replica')} and {_count(have[1], 'instance')}; "
                    f"run `ops/dev destroy` first to change them, or `{same}`"
                )
            config = msgspec.structs.replace(config, **topology_ports(env, *want, known=config))
        stack = cls(config)
        wanted = ports.wanted_moves(config, env)
        if Path(config.base_dir).exists():
            stack.pending_moves = wanted  # data to move with: only `up` does it (move_ports)
        else:
            stack.move_ports(wanted)  # nothing made yet: the stack simply is where it is asked to be
        return stack

    def move_ports(self, moves: list[ports.Move]) -> None:
        """Take the ports the environment asks for (ports.py): at once for a stack without data;
        for a stopped one too, repointing its replicas at a moved primary; never a running one."""
        if not moves:
            return
        if self.base_dir.exists():
            running = [s for s in self.config.services if self.running(s)]
            if running:
                ports.refuse_moving_running(moves, running)
            if self.config.redis_cluster:
                ports.refuse_moving_cluster(moves)
        old_primary = self.config.primary_port
        self.config = ports.moved(self.config, moves)
        self.__post_init__()
        if self.base_dir.exists() and self.config.primary_port != old_primary:
            for replica in self.config.replicas:
                self.postgres.repoint(replica, old_primary, self.config.primary_port)
        self.moved = moves
        self.pending_moves = []

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / "stack.json.tmp"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(self.config)))
        tmp.replace(self.run_dir / "stack.json")
        env = "".join(f"{k}={v}\n" for k, v in self.config.stack_env().items())
        (self.run_dir / "stack.env").write_text(env, encoding="utf-8")

    # ---------------------------------------------------------------- public operations

    def running(self, service: str) -> bool:
        return self.layout.running(service)

    def _announce(self, service: str) -> None:
        self.host.say(f"{service}: running" if self.running(service) else f"{service}: starting")

    def up(self, services: tuple[str, ...] | None = None) -> None:
        """Start everything that is not running; initialise what does not exist yet."""
        wanted = services or self.config.services
        self.config.check_ports()
        check_binaries()
        if self.config.ha:
            check_ha_binaries()
        # Before anything starts: a port held by another program fails the whole `up` at once,
        # naming it, rather than after the services in front of it are up.
        refuse_conflicts([c for s in wanted if not self.running(s) for c in port_conflicts(self.config, s)])
        self.layout.prepare(is_root=self.host.is_root)
        self.save()
        # Order matters: replicas are copied from the running primary, the apps need the databases and
        # Redis, and nginx comes last so it never fronts instances that are not up yet.
        if self.config.ha:
            self._up_ha(wanted)
        if "primary" in wanted:
            self.postgres.init_primary()
            self._announce("primary")
            self.postgres.start("primary")
            asyncio.run(prepare_database(self.config, self.host))
        for replica in self.config.replicas:
            if replica in wanted:
                self.postgres.init_replica(replica)
                self._announce(replica)
                self.postgres.start(replica)
        for node in self.config.redis_nodes:
            if node in wanted:
                self._announce(node)
                self.redis.start(node)
        if self.config.redis_cluster and set(self.config.redis_nodes) <= set(wanted):
            self.redis.create_cluster()
        for service in wanted:
            if service.startswith("app-"):
                self._announce(service)
                self.apps.start(service)
        if "nginx" in wanted:
            self._announce("nginx")
            self.nginx.start()

    def _up_ha(self, wanted: tuple[str, ...]) -> None:
        """etcd, then every Patroni member (the first to take the leader key bootstraps the
        cluster, the others copy it), then HAProxy in front, then the demo database through it."""
        if "etcd" in wanted:
            self._announce("etcd")
            self.ha.start_etcd()
        for member in self.config.members:
            if member in wanted:
                self._announce(member)
                self.ha.start_member(member)
        if set(self.config.members) <= set(wanted):
            self.ha.wait_for_members()
        if "haproxy" in wanted:
            self._announce("haproxy")
            self.ha.start_haproxy()
            asyncio.run(prepare_database(self.config, self.host))

    def start(self, service: str) -> None:
        service = self._validate(service)
        self.layout.prepare(is_root=self.host.is_root)
        if service == "etcd":
            self.ha.start_etcd()
        elif service.startswith("pg-"):
            self.ha.start_member(service)
        elif service == "haproxy":
            self.ha.start_haproxy()
        elif is_postgres(service):
            self.postgres.start(service)
        elif service.startswith("redis"):
            self.redis.start(service)
        elif service == "nginx":
            self.nginx.start()
        else:
            self.apps.start(service)

    def stop(self, service: str) -> None:
        service = self._validate(service)
        if service in ("etcd", "haproxy") or service.startswith("pg-"):
            self.ha.stop(service)
        elif is_postgres(service):
            self.postgres.stop(service)
        elif service.startswith("redis"):
            self.redis.stop(service)
        elif service == "nginx":
            self.nginx.stop()
        else:
            self.apps.stop(service)

    def down(self) -> None:
        """Stop every service, front to back."""
        for service in reversed(self.config.services):
            if service.startswith("pg-"):
                continue
            if service == "etcd":
                self.ha.stop_members()  # replicas first, the leader last: no failover on the way down
            self.stop(service)

    def destroy(self) -> None:
        """Stop everything and delete all data, and the config: the next ``up`` starts afresh
        (new secrets, the ports the environment asks for then)."""
        self.down()
        self.layout.remove()
        for name in ("stack.json", "stack.env"):
            (self.run_dir / name).unlink(missing_ok=True)

    def status(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for service in self.config.services:
            pid = self.layout.pid(service)
            port = self.config.port_of(service)
            rows.append(
                {"service": service, "running": pid is not None, "pid": pid, "port": port, "listening": port_open(port)}
            )
        return rows

    def _validate(self, service: str) -> str:
        """The service's name; ``replica`` (its name before stacks had several) is the first replica."""
        if service == "replica":
            service = "replica-1"
        if service not in self.config.services:
            raise StackError(f"unknown service {service!r}; choose from {', '.join(self.config.services)}")
        return service

    def iter_logs(self) -> Iterator[Path]:
        yield from sorted(self.logs_dir.glob("*.log"))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")

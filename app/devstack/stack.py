"""The local stack: Postgres primary + streaming replica, Redis, N app instances and nginx.

Used by ``ops/dev`` and by the test suite (on free ports, in a temporary directory), so the
stack the tests exercise is the stack developers run. Everything runs from system binaries
under one run directory; cluster data lives under a world-traversable base directory because
Postgres runs as the ``postgres`` user when we are root (DESIGN.md §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

PROJECT_DIR = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = PROJECT_DIR / "ops" / "nginx" / "catalog.conf.template"
APP_ROLE = "catalog_app"
DB_NAME = "catalog"
SERVICES = ("primary", "replica", "redis", "app-1", "app-2", "nginx")


class StackError(RuntimeError):
    """Something the user has to fix (a missing binary, a port in use); the message says what."""


class StackConfig(msgspec.Struct, kw_only=True):
    run_dir: str
    base_dir: str
    primary_port: int = 55432
    replica_port: int = 55433
    redis_port: int = 56379
    app_ports: list[int] = msgspec.field(default_factory=lambda: [8001, 8002])
    nginx_port: int = 8080
    admin_token: str = ""
    ryw_secret: str = ""
    products: int = 10_000
    categories: int = 16
    max_body_bytes: int = 65_536
    proxy_read_timeout: str = "15s"

    @property
    def services(self) -> tuple[str, ...]:
        apps = tuple(f"app-{i + 1}" for i in range(len(self.app_ports)))
        return ("primary", "replica", "redis", *apps, "nginx")

    def superuser_dsn(self, port: int, db: str = DB_NAME) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{db}"

    def app_dsn(self, port: int, db: str = DB_NAME) -> str:
        return f"postgresql://{APP_ROLE}@127.0.0.1:{port}/{db}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def app_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.app_ports]

    def stack_env(self) -> dict[str, str]:
        """The public contract of ``.run/stack.env`` (DESIGN.md §4)."""
        return {
            "CATALOG_URL": self.url,
            "CATALOG_APP_URLS": ",".join(self.app_urls),
            "CATALOG_PRIMARY_DSN": self.superuser_dsn(self.primary_port),
            "CATALOG_REPLICA_DSNS": self.superuser_dsn(self.replica_port),
            "CATALOG_REDIS_URL": self.redis_url,
            "CATALOG_ADMIN_TOKEN": self.admin_token,
        }

    def app_env(self, index: int) -> dict[str, str]:
        """Environment of app instance ``index`` (0-based): least-privilege role, dev-stack flags."""
        return {
            "CATALOG_ENV": "development",
            "CATALOG_INSTANCE_NAME": f"app-{index + 1}",
            "CATALOG_PRIMARY_DSN": self.app_dsn(self.primary_port),
            "CATALOG_REPLICA_DSNS": self.app_dsn(self.replica_port),
            "CATALOG_REDIS_URL": self.redis_url,
            "CATALOG_ADMIN_TOKEN": self.admin_token,
            "CATALOG_RYW_SECRET": self.ryw_secret,
            "CATALOG_COOKIE_SECURE": "false",  # plain http on loopback
            "CATALOG_DEBUG_HEADERS": "true",
            "CATALOG_MAX_BODY_BYTES": str(self.max_body_bytes),
            "CATALOG_LOG_FORMAT": "json",
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


def _pg_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise StackError("PostgreSQL server binaries not found: install them with `apt-get install postgresql`")


def check_binaries() -> None:
    """Fail with the exact package to install when a system binary is missing."""
    _pg_bindir()
    missing = [
        pkg
        for binary, pkg in (("redis-server", "redis-server"), ("nginx", "nginx"))
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists()
    ]
    if missing:
        raise StackError(f"missing system packages: install them with `apt-get install {' '.join(missing)}`")


def _which(binary: str) -> str:
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found is None:
        raise StackError(f"{binary} not found")
    return found


@dataclass
class Stack:
    """Brings services up and down; every method is idempotent."""

    config: StackConfig
    python: str = sys.executable
    quiet: bool = False
    _is_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    # Apps this process started; kept so they are reaped here rather than left as zombies.
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # ---------------------------------------------------------------- paths

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    @property
    def base_dir(self) -> Path:
        return Path(self.config.base_dir)

    @property
    def logs_dir(self) -> Path:
        return self.base_dir / "logs"

    def _data_dir(self, service: str) -> Path:
        return self.base_dir / service

    def _pidfile(self, service: str) -> Path:
        return self.base_dir / "pids" / f"{service}.pid"

    # ---------------------------------------------------------------- config persistence

    @classmethod
    def load_or_create(cls, run_dir: Path, **overrides: object) -> Stack:
        """The stack described by ``run_dir/stack.json``, created with fresh secrets if missing."""
        path = run_dir / "stack.json"
        if path.exists():
            config = msgspec.json.decode(path.read_bytes(), type=StackConfig)
        else:
            config = msgspec.convert(
                {
                    "run_dir": str(run_dir.resolve()),
                    "base_dir": str(default_base_dir(run_dir)),
                    "admin_token": secrets.token_urlsafe(24),
                    "ryw_secret": secrets.token_urlsafe(32),
                    **overrides,
                },
                StackConfig,
            )
        return cls(config)

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / "stack.json.tmp"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(self.config)))
        tmp.replace(self.run_dir / "stack.json")
        env = "".join(f"{k}={v}\n" for k, v in self.config.stack_env().items())
        (self.run_dir / "stack.env").write_text(env, encoding="utf-8")

    # ---------------------------------------------------------------- helpers

    def _say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def _as_postgres(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if self._is_root else cmd

    def _run(self, cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise StackError(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr.strip()}")
        return result

    def _prepare_dirs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        for sub, mode in (("logs", 0o1777), ("pids", 0o755), ("sock", 0o1777), ("nginx", 0o755)):
            d = self.base_dir / sub
            d.mkdir(exist_ok=True)
            d.chmod(mode)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name, target in (("logs", self.logs_dir), ("data", self.base_dir)):
            link = self.run_dir / name
            if link.is_symlink() and link.resolve() == target.resolve():
                continue
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        if self._is_root:
            self._check_traversable()

    def _check_traversable(self) -> None:
        for parent in [self.base_dir, *self.base_dir.parents]:
            if not parent.stat().st_mode & 0o001:
                raise StackError(f"{parent} is not traversable by the postgres user; choose another base dir")

    @staticmethod
    def _pid_alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _read_pid(self, service: str) -> int | None:
        path = self._pidfile(service)
        if service in ("primary", "replica"):
            path = self._data_dir(service) / "postmaster.pid"
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if self._pid_alive(pid) else None

    def _port_of(self, service: str) -> int:
        c = self.config
        if service.startswith("app-"):
            return c.app_ports[int(service.removeprefix("app-")) - 1]
        return {"primary": c.primary_port, "replica": c.replica_port, "redis": c.redis_port, "nginx": c.nginx_port}[
            service
        ]

    def running(self, service: str) -> bool:
        return self._read_pid(service) is not None

    def _ensure_port_free(self, service: str) -> None:
        port = self._port_of(service)
        if port_open(port):
            raise StackError(
                f"port {port} (for {service}) is in use by another program; "
                f"set CATALOG_DEV_{service.upper().replace('-', '_')}_PORT or stop it"
            )

    @staticmethod
    def _wait(predicate: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise StackError(f"timed out waiting for {what}")

    # ---------------------------------------------------------------- postgres

    def _pg_conf(self, port: int) -> str:
        return "\n".join(
            [
                "# Written by the catalog dev stack.",
                "listen_addresses = '127.0.0.1'",
                f"port = {port}",
                f"unix_socket_directories = '{self.base_dir / 'sock'}'",
                "wal_level = replica",
                "max_wal_senders = 10",
                "wal_keep_size = '1GB'",
                "hot_standby = on",
                "hot_standby_feedback = on",
                "max_connections = 300",
                "shared_buffers = '256MB'",
                "fsync = off",
                # fsync is off (disposable data), so a synchronous commit costs little, and WAL reaches
                # the replica at commit rather than at the next WAL-writer round (up to 200 ms later).
                "synchronous_commit = on",
                "full_page_writes = off",
                "shared_preload_libraries = 'pg_stat_statements'",
                "pg_stat_statements.track = all",
                "wal_receiver_status_interval = '1s'",
                "max_standby_streaming_delay = '30s'",
                "log_min_messages = warning",
                "",
            ]
        )

    def _write_pg_conf(self, service: str, port: int) -> None:
        data = self._data_dir(service)
        conf = self._pg_conf(port)
        # Written through the postgres user: the data directory is private to it.
        subprocess.run(
            self._as_postgres(["tee", str(data / "catalog.conf")]),
            input=conf,
            text=True,
            capture_output=True,
            check=True,
        )
        include = "include_if_exists = 'catalog.conf'\n"
        main_conf = data / "postgresql.conf"
        current = subprocess.run(
            self._as_postgres(["cat", str(main_conf)]), capture_output=True, text=True, check=True
        ).stdout
        if include not in current:
            subprocess.run(
                self._as_postgres(["tee", "-a", str(main_conf)]),
                input=include,
                text=True,
                capture_output=True,
                check=True,
            )

    def _init_primary(self) -> None:
        data = self._data_dir("primary")
        if (data / "PG_VERSION").exists() or self._pg_initialised(data):
            return
        data.mkdir(mode=0o700, exist_ok=True)
        if self._is_root:
            shutil.chown(data, "postgres", "postgres")
        self._say("  initdb primary")
        self._run(
            self._as_postgres(
                [
                    str(_pg_bindir() / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            )
        )
        hba = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
        subprocess.run(
            self._as_postgres(["tee", str(data / "pg_hba.conf")]), input=hba, text=True, capture_output=True, check=True
        )
        self._write_pg_conf("primary", self.config.primary_port)

    def _pg_initialised(self, data: Path) -> bool:
        if not data.exists():
            return False
        result = subprocess.run(self._as_postgres(["test", "-f", str(data / "PG_VERSION")]), check=False)
        return result.returncode == 0

    def _init_replica(self) -> None:
        data = self._data_dir("replica")
        if self._pg_initialised(data):
            return
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(mode=0o700)
        if self._is_root:
            shutil.chown(data, "postgres", "postgres")
        self._say("  pg_basebackup replica")
        self._run(
            self._as_postgres(
                [
                    str(_pg_bindir() / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.config.primary_port),
                    "-U",
                    "postgres",
                    "-D",
                    str(data),
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                ]
            )
        )
        self._write_pg_conf("replica", self.config.replica_port)

    def _pg_start(self, service: str) -> None:
        if self.running(service):
            return
        self._ensure_port_free(service)
        port = self.config.primary_port if service == "primary" else self.config.replica_port
        self._write_pg_conf(service, port)  # settings take effect at (re)start
        log = self.logs_dir / f"{service}.log"
        self._run(
            self._as_postgres(
                [
                    str(_pg_bindir() / "pg_ctl"),
                    "-D",
                    str(self._data_dir(service)),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
        )

    def _pg_stop(self, service: str) -> None:
        if not self.running(service):
            return
        self._run(
            self._as_postgres(
                [
                    str(_pg_bindir() / "pg_ctl"),
                    "-D",
                    str(self._data_dir(service)),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ]
            ),
            check=False,
        )

    async def _prepare_database(self) -> None:
        import asyncpg

        from app.core.migrate import grant_app_role, migrate
        from app.seed.seed import seed

        c = self.config
        conn = await asyncpg.connect(c.superuser_dsn(c.primary_port, "postgres"))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME):
                await conn.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            await conn.close()
        dsn = c.superuser_dsn(c.primary_port)
        applied = await migrate(dsn)
        for m in applied:
            self._say(f"  migrated {m.version:04d}_{m.name}")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        finally:
            await conn.close()
        await grant_app_role(dsn, APP_ROLE)
        result = await seed(dsn, products=c.products, categories=c.categories, show_progress=not self.quiet)
        if not result.skipped:
            self._say(f"  seeded {result.categories} categories, {result.products} products, {result.orders} orders")

    # ---------------------------------------------------------------- redis

    def _redis_start(self) -> None:
        if self.running("redis"):
            return
        self._ensure_port_free("redis")
        data = self._data_dir("redis")
        data.mkdir(exist_ok=True)
        self._run(
            [
                _which("redis-server"),
                "--port",
                str(self.config.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                str(self._pidfile("redis")),
                "--logfile",
                str(self.logs_dir / "redis.log"),
                "--dir",
                str(data),
                "--maxmemory",
                "512mb",
                # Never evict: an evicted fence would let a stale fill back in. When full, fills
                # fail (reads go around the cache) and invalidations wait in the outbox.
                "--maxmemory-policy",
                "noeviction",
            ]
        )
        self._wait(lambda: self.running("redis") and port_open(self.config.redis_port), "redis")

    # ---------------------------------------------------------------- apps

    def _app_start(self, service: str) -> None:
        if self.running(service):
            return
        self._ensure_port_free(service)
        index = int(service.removeprefix("app-")) - 1
        port = self.config.app_ports[index]
        env = {**os.environ, **self.config.app_env(index)}
        log = (self.logs_dir / f"{service}.log").open("ab")
        proc = subprocess.Popen(
            [self.python, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._children[service] = proc
        self._pidfile(service).write_text(f"{proc.pid}\n")

        def healthy() -> bool:
            if proc.poll() is not None:
                raise StackError(f"{service} exited ({proc.returncode}); see {self.logs_dir / service}.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        self._wait(healthy, f"{service} on port {port}")

    def _stop_pid(self, service: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        child = self._children.pop(service, None)
        if child is not None and child.poll() is None:
            child.send_signal(sig)
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        pid = self._read_pid(service)
        if pid is None:
            self._pidfile(service).unlink(missing_ok=True)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while self._pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if self._pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        self._pidfile(service).unlink(missing_ok=True)

    # ---------------------------------------------------------------- nginx

    def render_nginx_site(self) -> str:
        """The shared template with this stack's values filled in."""
        c = self.config
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in c.app_ports)
        values = {
            "CATALOG_UPSTREAM_SERVERS": servers,
            "CATALOG_NGINX_LISTEN": f"127.0.0.1:{c.nginx_port}",
            "CATALOG_MAX_BODY": f"{c.max_body_bytes // 1024}k",
            "CATALOG_WRITE_RATE": "50r/s",
            "CATALOG_WRITE_BURST": "100",
            "CATALOG_PROXY_READ_TIMEOUT": c.proxy_read_timeout,
        }
        text = NGINX_TEMPLATE.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("${" + key + "}", value)
        leftover = re.search(r"\$\{CATALOG_[A-Z_]+\}", text)
        if leftover:
            raise StackError(f"nginx template placeholder {leftover.group(0)} is not filled by the launcher")
        return text

    def render_nginx_main(self) -> str:
        base = self.base_dir / "nginx"
        user = "" if not self._is_root else f"user {pwd.getpwuid(0).pw_name};\n"
        return (
            f"{user}worker_processes 1;\n"
            f"pid {self._pidfile('nginx')};\n"
            f"error_log {self.logs_dir / 'nginx-error.log'} warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"    access_log {self.logs_dir / 'nginx-access.log'};\n"
            f"    client_body_temp_path {base}/client_body;\n"
            f"    proxy_temp_path {base}/proxy;\n"
            f"    fastcgi_temp_path {base}/fastcgi;\n"
            f"    uwsgi_temp_path {base}/uwsgi;\n"
            f"    scgi_temp_path {base}/scgi;\n"
            "    server_tokens off;\n"
            f"    include {base / 'catalog.conf'};\n"
            "}\n"
        )

    def _write_nginx_conf(self) -> Path:
        base = self.base_dir / "nginx"
        (base / "catalog.conf").write_text(self.render_nginx_site(), encoding="utf-8")
        main = base / "nginx.conf"
        main.write_text(self.render_nginx_main(), encoding="utf-8")
        return main

    def _nginx_start(self) -> None:
        if self.running("nginx"):
            return
        self._ensure_port_free("nginx")
        main = self._write_nginx_conf()
        prefix = self.base_dir / "nginx"
        self._run([_which("nginx"), "-p", str(prefix), "-c", str(main), "-t", "-q"])
        self._run([_which("nginx"), "-p", str(prefix), "-c", str(main)])
        self._wait(lambda: self.running("nginx") and port_open(self.config.nginx_port), "nginx")

    # ---------------------------------------------------------------- public operations

    def up(self, services: tuple[str, ...] | None = None) -> None:
        """Start everything that is not running; initialise what does not exist yet."""
        wanted = services or self.config.services
        check_binaries()
        self._prepare_dirs()
        self.save()
        if "primary" in wanted:
            self._init_primary()
            self._say("primary: starting" if not self.running("primary") else "primary: running")
            self._pg_start("primary")
            asyncio.run(self._prepare_database())
        if "replica" in wanted:
            self._init_replica()
            self._say("replica: starting" if not self.running("replica") else "replica: running")
            self._pg_start("replica")
        if "redis" in wanted:
            self._say("redis: starting" if not self.running("redis") else "redis: running")
            self._redis_start()
        for service in wanted:
            if service.startswith("app-"):
                self._say(f"{service}: starting" if not self.running(service) else f"{service}: running")
                self._app_start(service)
        if "nginx" in wanted:
            self._say("nginx: starting" if not self.running("nginx") else "nginx: running")
            self._nginx_start()

    def start(self, service: str) -> None:
        self._validate(service)
        self._prepare_dirs()
        if service in ("primary", "replica"):
            self._pg_start(service)
        elif service == "redis":
            self._redis_start()
        elif service == "nginx":
            self._nginx_start()
        else:
            self._app_start(service)

    def stop(self, service: str) -> None:
        self._validate(service)
        if service in ("primary", "replica"):
            self._pg_stop(service)
        elif service == "nginx":
            self._stop_pid(service, signal.SIGQUIT)
        else:
            self._stop_pid(service)

    def down(self) -> None:
        """Stop every service, front to back."""
        for service in reversed(self.config.services):
            self.stop(service)

    def destroy(self) -> None:
        """Stop everything and delete all data."""
        self.down()
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
        for name in ("logs", "data"):
            link = self.run_dir / name
            if link.is_symlink():
                link.unlink()

    def status(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for service in self.config.services:
            pid = self._read_pid(service)
            port = self._port_of(service)
            rows.append(
                {"service": service, "running": pid is not None, "pid": pid, "port": port, "listening": port_open(port)}
            )
        return rows

    def _validate(self, service: str) -> None:
        if service not in self.config.services:
            raise StackError(f"unknown service {service!r}; choose from {', '.join(self.config.services)}")

    def iter_logs(self) -> Iterator[Path]:
        yield from sorted(self.logs_dir.glob("*.log"))

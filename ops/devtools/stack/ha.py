"""The HA topology's databases (``ops/dev up --ha``, docs/adr/0018): etcd, Patroni and HAProxy.

- **etcd** (one member here; three in compose.ha.yaml) is Patroni's consensus store: the
  leader key, with a ttl, says which member is the primary.
- **Patroni** runs each Postgres member (``pg-1..3``): bootstraps the first with initdb, the others
  with a base backup, restarts a crashed Postgres, and when the leader key expires promotes the
  healthiest replica and turns the old primary into a replica (``pg_rewind``) when it is back.
- **HAProxy** listens on the stack's primary port and sends each session to the member whose
  Patroni answers ``GET /primary`` with 200, cutting the sessions of a member that stops being it.

Timings (Patroni's rule: loop_wait + 2 x retry_timeout <= ttl): a primary that stops renewing its
key is replaced within about ``TTL_S`` + ``LOOP_WAIT_S``. Durable settings (fsync, full page
writes: pg_rewind needs them), unlike the default stack's disposable ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.stack.config import PROJECT_DIR, StackConfig, StackError, ensure_port_free
from devtools.stack.layout import Layout
from devtools.stack.postgres import SERVER_SETTINGS
from devtools.stack.system import Host, last_log_line, pg_bindir, wait_for, which

TTL_S = 10
LOOP_WAIT_S = 2
RETRY_TIMEOUT_S = 4
SCOPE = "catalog"
HA_SETTINGS = {
    **SERVER_SETTINGS,
    "fsync": "on",
    "full_page_writes": "on",
    "wal_log_hints": "on",
    "synchronous_commit": "on",
    "max_replication_slots": "10",
}
HA_SETTINGS.pop("wal_keep_size")  # Patroni keeps a replication slot per member instead
HA_BINARIES = {"etcd": "etcd-server", "haproxy": "haproxy"}  # binary -> Debian package
# Patroni comes from its own venv (ops/_bootstrap.sh: .venv-ha, on the system's Python, which the
# postgres user can run), pinned in requirements.txt. Not Debian bookworm's 3.0.2: it renews an
# expired etcd3 lease by writing the leader key unconditionally, so a primary frozen past its ttl
# takes the key back from the member promoted meanwhile, whose writes are then lost (seen by the
# primary-freeze drill; fixed upstream in 3.0.3; tests/system/test_ha_leader_key.py). docs/adr/0018.
PATRONI_VENV = PROJECT_DIR / ".venv-ha"
PATRONI_MIN_VERSION = (3, 0, 3)


def patroni_binary(name: str = "patroni") -> str:
    """``patroni`` or ``patronictl`` of Patroni's venv."""
    found = PATRONI_VENV / "bin" / name
    if not found.exists():
        raise StackError(f"{found} is missing: run ops/dev (it installs Patroni's venv)")
    return str(found)


def check_ha_binaries() -> None:
    missing = [
        pkg
        for binary, pkg in HA_BINARIES.items()
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists()
    ]
    if missing:
        raise StackError(f"the HA stack needs: apt-get install {' '.join(missing)}")
    answer = subprocess.run([patroni_binary(), "--version"], capture_output=True, text=True, check=False).stdout
    version = answer.split()[-1] if answer.strip() else "unknown"
    if not version[:1].isdigit() or tuple(int(p) for p in version.split(".")[:3]) < PATRONI_MIN_VERSION:
        raise StackError(f"the HA stack needs Patroni >= {'.'.join(map(str, PATRONI_MIN_VERSION))} "
                         f"(found {version} in {PATRONI_VENV}): ops/dev installs the pinned one")  # fmt: skip


def http_json(url: str, timeout: float = 1.0) -> tuple[int, Any]:
    """``(status, decoded body)``; ``(0, None)`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310  (loopback, our own URL)
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


@dataclass
class HA:
    config: StackConfig
    layout: Layout
    host: Host
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # ------------------------------------------------------------ processes

    def _spawn(self, service: str, cmd: list[str], *, as_postgres: bool = False) -> subprocess.Popen[bytes]:
        ensure_port_free(self.config, service)
        if as_postgres and self.host.is_root:
            # setpriv execs (runuser would fork): the pid we keep is the process we signal.
            cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *cmd]
        log = (self.layout.logs_dir / f"{service}.log").open("ab")
        env = {**os.environ, "HOME": str(self.layout.base_dir)} if as_postgres else None
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=self.layout.base_dir, start_new_session=True)  # fmt: skip
        log.close()
        self._children[service] = proc
        self.layout.pidfile(service).write_text(f"{proc.pid}\n")
        return proc

    def _alive(self, service: str) -> None:
        proc = self._children.get(service)
        if proc is not None and proc.poll() is not None:
            log = self.layout.logs_dir / f"{service}.log"
            raise StackError(f"{service} exited ({proc.returncode}){last_log_line(log)}")

    def stop(self, service: str, timeout: float = 30.0) -> None:
        child = self._children.pop(service, None)
        self.layout.stop(service, signal.SIGTERM, timeout)
        if child is not None:
            child.wait()

    # ------------------------------------------------------------ etcd

    def start_etcd(self) -> None:
        if self.layout.running("etcd"):
            return
        data = self.layout.base_dir / "etcd"
        port = self.config.etcd_port
        client, peer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
        self._spawn("etcd", [which("etcd"), "--name", "etcd-1", "--data-dir", str(data),
                             "--listen-client-urls", client, "--advertise-client-urls", client,
                             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                             "--initial-cluster", f"etcd-1={peer}", "--initial-cluster-state", "new"])  # fmt: skip

        def healthy() -> bool:
            self._alive("etcd")
            status, body = http_json(f"{client}/health")
            return status == 200 and isinstance(body, dict) and body.get("health") == "true"

        wait_for(healthy, f"etcd on port {port}", log=self.layout.logs_dir / "etcd.log")

    # ------------------------------------------------------------ Patroni members

    def config_path(self, member: str) -> Path:
        return self.layout.base_dir / member / "patroni.yml"

    def patroni_config(self, member: str) -> dict[str, Any]:
        home = self.layout.base_dir / member
        port, api = self.config.port_of(member), self.config.api_port_of(member)
        password = {"username": "postgres", "password": "postgres"}  # trust on loopback; Patroni wants one
        return {
            "scope": SCOPE,
            "namespace": "/catalog/",
            "name": member,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{api}", "connect_address": f"127.0.0.1:{api}"},
            "etcd3": {"hosts": f"127.0.0.1:{self.config.etcd_port}"},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL_S,
                    "loop_wait": LOOP_WAIT_S,
                    "retry_timeout": RETRY_TIMEOUT_S,
                    "maximum_lag_on_failover": 1_048_576,
                    # etcd unreachable: the primary stays one while every member answers its REST API
                    # (a DCS outage is then no write outage; a partitioned primary still steps down).
                    "failsafe_mode": True,
                    "synchronous_mode": self.config.synchronous_mode,
                    "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": HA_SETTINGS},
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{port}",
                "connect_address": f"127.0.0.1:{port}",
                "data_dir": str(home / "data"),
                "bin_dir": str(pg_bindir()),
                "pgpass": str(home / "pgpass"),
                "authentication": {"superuser": password, "replication": password, "rewind": password},
                "parameters": {"unix_socket_directories": str(self.layout.base_dir / "sock")},
            },
        }

    def start_member(self, member: str) -> None:
        if self.layout.running(member):
            return
        home = self.layout.base_dir / member
        home.mkdir(mode=0o700, exist_ok=True)
        if self.host.is_root:
            shutil.chown(home, "postgres", "postgres")
        # JSON is YAML: Patroni reads it as its config file.
        text = json.dumps(self.patroni_config(member), indent=2)
        if self.host.is_root:
            self.host.write_as_postgres(self.config_path(member), text)
        else:
            self.config_path(member).write_text(text, encoding="utf-8")
        self._spawn(member, [patroni_binary(), str(self.config_path(member))], as_postgres=True)

    def restart_member(self, member: str) -> None:
        """Start a member's Patroni again after it was killed (reaped here if it was our child)."""
        child = self._children.pop(member, None)
        if child is not None:
            child.wait(timeout=15)
        # Not our child: whoever adopted it reaps it; until then it still looks alive.
        wait_for(lambda: not self.layout.running(member), f"{member}'s killed Patroni to be gone", timeout=15)
        self.layout.pidfile(member).unlink(missing_ok=True)
        self.start_member(member)

    def cluster(self) -> dict[str, Any] | None:
        """Patroni's ``GET /cluster`` from the first member that answers."""
        for url in self.config.patroni_urls:
            status, body = http_json(f"{url}/cluster")
            if status == 200 and isinstance(body, dict):
                return body
        return None

    def leader(self) -> str | None:
        cluster = self.cluster() or {}
        return next((m["name"] for m in cluster.get("members", []) if m.get("role") == "leader"
                     and m.get("state") == "running"), None)  # fmt: skip

    def wait_for_members(self, timeout: float = 180.0) -> None:
        """Every member running, one of them the leader, the others streaming from it."""

        def ready() -> bool:
            for member in self.config.members:
                self._alive(member)
            members = (self.cluster() or {}).get("members", [])
            running = {m["name"]: m.get("role") for m in members if m.get("state") in {"running", "streaming"}}
            if set(running) != set(self.config.members) or "leader" not in running.values():
                return False
            # The cluster view keeps a dead member's key until its ttl: ask each member itself too.
            return all(http_json(f"{url}/patroni")[0] == 200 for url in self.config.patroni_urls)

        wait_for(ready, "the Patroni members", timeout=timeout, log=self.layout.logs_dir / "pg-1.log")

    def stop_members(self) -> None:
        """Replicas first, the leader last: no failover while the stack goes down."""
        leader = self.leader()
        for member in sorted(self.config.members, key=lambda m: m == leader):
            self.stop(member)

    def patronictl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [patroni_binary("patronictl"), "-c", str(self.config_path(self.config.members[0])), *args]
        return self.host.run(self.host.as_postgres(cmd), check=check)

    # ------------------------------------------------------------ HAProxy

    def haproxy_config(self) -> str:
        servers = "\n".join(
            f"    server {m} 127.0.0.1:{self.config.port_of(m)} check port {self.config.api_port_of(m)}"
            for m in self.config.members
        )
        return f"""# Written by the catalog dev stack: sessions go to the member Patroni made the primary.
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 1s
    timeout client 30m
    timeout server 30m
    timeout check 1s
listen primary
    bind 127.0.0.1:{self.config.primary_port}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
{servers}
"""

    def start_haproxy(self) -> None:
        if self.layout.running("haproxy"):
            return
        cfg = self.layout.base_dir / "haproxy.cfg"
        cfg.write_text(self.haproxy_config(), encoding="utf-8")
        self._spawn("haproxy", [which("haproxy"), "-f", str(cfg), "-db"])

        # HAProxy counts every server up until its first checks: wait until session after session
        # (round robin over whatever it thinks up) lands on the primary.
        psql = [str(pg_bindir() / "psql"), "-h", "127.0.0.1", "-p", str(self.config.primary_port), "-U", "postgres",
                "-d", "postgres", "-Atc", "SELECT pg_is_in_recovery()"]  # fmt: skip
        streak = 0

        def routes() -> bool:
            nonlocal streak
            self._alive("haproxy")
            answer = subprocess.run(psql, capture_output=True, text=True, check=False, timeout=5).stdout.strip()
            streak = streak + 1 if answer == "f" else 0
            return streak >= 2 * len(self.config.members)

        wait_for(routes, f"HAProxy on port {self.config.primary_port} to reach the primary",
                 log=self.layout.logs_dir / "haproxy.log")  # fmt: skip


def switchover(ha: HA, target: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Ask Patroni for a planned switchover (to ``target``, else its choice); wait for the new leader.

    Patroni refuses a switchover it judges unsafe (no replica caught up, a candidate it cannot
    reach) and ``patronictl`` still exits 0, printing "Switchover failed": the answer is read, the
    request repeated until ``timeout``, and a timeout quotes what Patroni said last.
    """
    was = ha.leader()
    if was is None:
        raise StackError("no member is the leader now: nothing to switch over from")
    if target is not None and target not in ha.config.members:
        raise StackError(f"unknown member {target!r}; choose from {', '.join(ha.config.members)}")
    started = time.monotonic()
    deadline = started + timeout
    attempts, said = 0, ""

    def moved() -> bool:
        leader = ha.leader()
        return leader is not None and leader != was

    while time.monotonic() < deadline:
        attempts += 1
        out = ha.patronictl("switchover", SCOPE, "--leader", was, *(["--candidate", target] if target else []),
                            "--force", check=False)  # fmt: skip
        answers = [line.strip() for line in (out.stdout + out.stderr).splitlines() if "witchover" in line]
        said = answers[-1] if answers else (out.stderr.strip() or out.stdout.strip())[-300:]
        if out.returncode == 0 and "failed" not in said.lower() and "error" not in said.lower():
            until = min(deadline, time.monotonic() + 30.0)  # accepted: the new leader's key is seconds away
            while time.monotonic() < until and not moved():
                time.sleep(0.1)
        if moved():
            return {"was": was, "leader": ha.leader(), "seconds": time.monotonic() - started, "attempts": attempts}
        time.sleep(1.0)
    cluster = ha.cluster() or {}
    states = ", ".join(f"{m.get('name')} {m.get('role')}/{m.get('state')} lag {m.get('lag', '-')}"
                       for m in cluster.get("members", []))  # fmt: skip
    raise StackError(f"timed out waiting for the switchover from {was} ({attempts} requests); Patroni said "
                     f"{said!r}; members: {states}{last_log_line(ha.layout.logs_dir / f'{was}.log')}")

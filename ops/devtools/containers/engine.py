"""The container engine ``ops/compose`` drives: a Docker engine, or podman behind its
Docker-compatible socket (which this module can start).

Docker is used as is. podman needs three things on machines without systemd, all kept in the
project (``ops/containers/engine/containers.conf``, pointed at by ``CONTAINERS_CONF``) instead
of ``/etc``: runc with cgroupfs, file events, and ulimits the kernel allows. Without systemd
podman also never runs healthchecks by itself; :attr:`Engine.drives_health` tells the caller to.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CONTAINERS_CONF = ROOT / "ops" / "containers" / "engine" / "containers.conf"
PODMAN_SOCKET = Path(os.environ.get("CATALOG_PODMAN_SOCKET") or "/run/podman/podman.sock")
# A service ``ops/compose`` leaves behind exits by itself after this long without a request; one
# the tests start is theirs and stopped at the end of the session (:meth:`Engine.stop_service`).
PODMAN_IDLE_S = 900
SERVICE_STOP_S = 15.0
PODMAN_PACKAGES = (
    "podman", "buildah", "mmdebstrap", "runc", "fuse-overlayfs", "slirp4netns", "uidmap",
    "iptables", "netavark", "aardvark-dns", "docker-compose",
)  # fmt: skip


class EngineError(Exception):
    """An expected failure: one line (or a short tail of a tool's output) for the operator."""


@dataclass(frozen=True)
class Engine:
    kind: str  # "docker" or "podman"
    cli: str  # the command that builds, imports and inspects images and containers
    compose: tuple[str, ...]  # "docker compose" or "docker-compose"
    env: dict[str, str] = field(default_factory=dict)  # DOCKER_HOST, CONTAINERS_CONF for the children
    drives_health: bool = False  # podman without systemd: healthchecks run only when asked
    # The API service process this caller started and owns (``own_service=True``), if any.
    service: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    def stop_service(self) -> None:
        """Stop and reap the API service this caller started (nothing if it found one running)."""
        if self.service is None or self.service.poll() is not None:
            return
        self.service.terminate()
        try:
            self.service.wait(timeout=SERVICE_STOP_S)
        except subprocess.TimeoutExpired:
            self.service.kill()
            self.service.wait(timeout=SERVICE_STOP_S)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **self.env, **(extra or {})}

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run([self.cli, *args], self.environ(), check=check, timeout=timeout)

    def inspect(self, ids: list[str]) -> list[dict[str, object]]:
        if not ids:
            return []
        result = self.run("inspect", *ids, check=False)
        try:
            found = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            return []
        return [c for c in found if isinstance(c, dict)]

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0


def _run(command: list[str], env: dict[str, str], *, check: bool, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    except FileNotFoundError as exc:
        raise EngineError(f"{command[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"`{' '.join(command[:3])}` did not finish in {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise EngineError(f"`{' '.join(command[:3])}` failed:\n{tail}")
    return result


def _compose_for(env: dict[str, str]) -> tuple[str, ...] | None:
    if shutil.which("docker") and _run(["docker", "compose", "version"], env, check=False, timeout=30).returncode == 0:
        return ("docker", "compose")
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    return None


def _docker_engine() -> Engine | None:
    """A Docker (or Docker-compatible) engine the docker CLI already reaches, as configured."""
    if not shutil.which("docker"):
        return None
    env = dict(os.environ)
    version = _run(["docker", "version", "--format", "{{json .Server}}"], env, check=False, timeout=15)
    if version.returncode != 0 or version.stdout.strip() == "null":
        return None
    compose = _compose_for(env)
    if compose is None:
        raise EngineError("a Docker engine answers but neither `docker compose` nor `docker-compose` is installed")
    podman = "Podman" in version.stdout
    return Engine(
        kind="podman" if podman else "docker",
        cli="podman" if podman and shutil.which("podman") else "docker",
        compose=compose,
        env={"CONTAINERS_CONF": str(CONTAINERS_CONF)} if podman else {},
        drives_health=podman,
    )


def ensure_podman_packages() -> None:
    missing = [p for p in PODMAN_PACKAGES if not _package_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise EngineError(f"no container engine: install podman with `sudo apt-get install {' '.join(missing)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env, check=True, timeout=900)


def _package_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True, check=False
    )
    return result.returncode == 0 and result.stdout.endswith("installed")


def start_podman_socket(
    log: Path, *, install: bool = True, own_service: bool = False, socket: Path = PODMAN_SOCKET
) -> Engine:
    """podman's Docker-compatible API on ``socket``, started if nothing serves it; with
    ``install``, podman's packages first (apt-get, as root) where they are missing.

    Who owns a service started here is explicit. ``own_service``: the caller, through
    :attr:`Engine.service`, and it must call :meth:`Engine.stop_service` (the test fixtures do, at
    the end of the session). Otherwise the service is handed over: detached into a session of its
    own, its launcher reaped at once, and it exits by itself after :data:`PODMAN_IDLE_S` idle."""
    if install and shutil.which("apt-get") and shutil.which("dpkg-query"):
        ensure_podman_packages()
    if not shutil.which("podman"):
        hint = "install Docker, or podman and docker-compose" if install else "`ops/compose up` sets podman up"
        raise EngineError(f"no container engine: no Docker engine answers and podman is not installed ({hint})")
    env = {"CONTAINERS_CONF": str(CONTAINERS_CONF), "DOCKER_HOST": f"unix://{socket}"}
    full = {**os.environ, **env}
    service: subprocess.Popen[bytes] | None = None
    if not _socket_answers(full, socket):
        service = _start_service(socket, log, full, detached=not own_service)
        deadline = time.monotonic() + 20
        while not _socket_answers(full, socket):
            if time.monotonic() > deadline or (service is not None and service.poll() is not None):
                if service is not None:
                    Engine("podman", "podman", (), service=service).stop_service()
                raise EngineError(f"podman's API socket did not come up in 20 s (see {log})")
            time.sleep(0.2)
    compose = _compose_for(full)
    if compose is None:
        raise EngineError("podman runs but docker-compose is not installed: `apt-get install docker-compose`")
    return Engine(kind="podman", cli="podman", compose=compose, env=env, drives_health=True, service=service)


def _start_service(socket: Path, log: Path, env: dict[str, str], *, detached: bool) -> subprocess.Popen[bytes] | None:
    """``podman system service`` on ``socket``: the process (``detached=False``), or None once a
    detached one is on its own (``setsid --fork`` starts it and exits; we reap that launcher)."""
    socket.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = ["podman", "system", "service", "--time", str(PODMAN_IDLE_S), f"unix://{socket}"]
    with log.open("ab") as out:
        if detached:
            subprocess.run(
                ["setsid", "--fork", *command], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=True
            )
            return None
        return subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509  (one prctl call; a killed caller takes it along)
        )  # fmt: skip


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends it SIGTERM when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _socket_answers(env: dict[str, str], socket: Path = PODMAN_SOCKET) -> bool:
    if not socket.exists():
        return False
    result = _run(["podman", "--remote", "--url", env["DOCKER_HOST"], "version"], env, check=False, timeout=10)
    return result.returncode == 0


def find_engine(log: Path, *, install: bool = True, own_service: bool = False) -> Engine:
    """Docker if one answers, else podman behind its socket (``install``: its packages too;
    ``own_service``: a service started here is the caller's to stop, see :func:`start_podman_socket`)."""
    return _docker_engine() or start_podman_socket(log, install=install, own_service=own_service)

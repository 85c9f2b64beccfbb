"""Who owns podman's API service: a caller that starts it for itself stops and reaps it; one that
hands it over (``ops/compose``) leaves no child of its own behind. Each on a socket of its own, so
the session's service is not touched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.containers.engine import Engine, start_podman_socket

pytestmark = pytest.mark.skipif(
    os.environ.get("CATALOG_TEST_BACKEND") != "containers",
    reason="the container tier runs with CATALOG_TEST_BACKEND=containers (ops/test runs it after the others)",
)


@pytest.fixture(autouse=True)
def _podman(container_engine: Engine) -> None:
    """The session's engine set podman up (installed where missing); on Docker there is no service."""
    if container_engine.kind != "podman":
        pytest.skip("the engine is Docker: no API service of ours to own")


def _services_on(socket: Path) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"system service .*unix://{socket}"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


def _children() -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def test_an_owned_service_is_stopped_and_reaped(tmp_path: Path) -> None:
    socket = tmp_path / "podman.sock"
    engine = start_podman_socket(tmp_path / "service.log", install=False, own_service=True, socket=socket)
    assert engine.service is not None, "nothing served the socket, so this caller started the service"
    pid = engine.service.pid
    assert engine.run("--remote", "--url", f"unix://{socket}", "version").returncode == 0
    assert _services_on(socket) == [pid]

    engine.stop_service()

    assert engine.service.returncode is not None, "stopped and waited for: no zombie, no ResourceWarning"
    assert not Path(f"/proc/{pid}").exists()
    assert _services_on(socket) == []


def test_a_service_found_running_is_used_not_owned(tmp_path: Path) -> None:
    socket = tmp_path / "podman.sock"
    first = start_podman_socket(tmp_path / "service.log", install=False, own_service=True, socket=socket)
    try:
        second = start_podman_socket(tmp_path / "service.log", install=False, own_service=True, socket=socket)
        assert second.service is None, "a running service is not started twice, nor stopped by a mere user"
        second.stop_service()
        assert first.service is not None
        assert first.service.poll() is None
    finally:
        first.stop_service()


def test_a_handed_over_service_leaves_no_child_behind(tmp_path: Path) -> None:
    socket = tmp_path / "podman.sock"
    before = set(_children())
    engine: Engine = start_podman_socket(tmp_path / "service.log", install=False, socket=socket)
    try:
        assert engine.service is None
        services = _services_on(socket)
        assert len(services) == 1, "the service runs on its own"
        assert set(_children()) == before, "its launcher was reaped; the service is not our child"
        assert os.getsid(services[0]) != os.getsid(0), "in a session of its own: our end is not its end"
    finally:
        for pid in _services_on(socket):
            os.kill(pid, 15)
        deadline = time.monotonic() + 15
        while _services_on(socket) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert _services_on(socket) == []


def test_a_killed_owner_takes_its_service_along(tmp_path: Path) -> None:
    """An owner killed before it can stop the service (a test run hitting its timeout) leaves none."""
    socket = tmp_path / "podman.sock"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from devtools.containers.engine import start_podman_socket\n"
        f"e = start_podman_socket(Path({str(tmp_path / 'service.log')!r}), install=False, own_service=True,"
        f" socket=Path({str(socket)!r}))\n"
        "print(e.service.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "ops")])}
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=root) as owner:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert _services_on(socket) == [pid]

        owner.kill()

    deadline = time.monotonic() + 15
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid), "the service outlived the process that owned it"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaping is up to whoever adopted it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("command", [("status",), ("logs",)])
def test_a_read_only_compose_command_stops_the_service_it_started(tmp_path: Path, command: tuple[str, ...]) -> None:
    """`ops/compose status` where no service answers starts one to ask, and stops it before it exits:
    only `up` leaves one behind (for the stack's next commands; it exits by itself when idle)."""
    socket = tmp_path / "podman.sock"
    root = Path(__file__).resolve().parents[2]
    # DOCKER_HOST names the same socket: the session's engine (which the tier exports) is not found
    # through it, so the command must start a service of its own there.
    env = {**os.environ, "CATALOG_PODMAN_SOCKET": str(socket), "CATALOG_COMPOSE_PROJECT": "catalog-engine-test",
           "DOCKER_HOST": f"unix://{socket}"}  # fmt: skip
    proc = subprocess.Popen([str(root / "ops" / "compose"), *command], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    started = False  # watched while it runs: a command that failed before asking podman proves nothing
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        started = started or bool(_services_on(socket))
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
    _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr, stderr
    assert started, f"ops/compose {' '.join(command)} never started a service on its socket: {stderr[-2000:]}"
    assert _services_on(socket) == [], f"ops/compose {' '.join(command)} left its podman service running"

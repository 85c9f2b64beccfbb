"""The container tier: ``ops/compose`` as a user runs it, on this machine's engine (Docker, or
podman behind its socket), with base images from a registry or built from Debian packages.

One project for the module, on free ports, named apart from a developer's own ``catalog``
project; it is torn down with ``down --volumes`` and the test checks nothing is left behind.
Runs with ``CATALOG_TEST_BACKEND=containers`` (``ops/test`` runs it after the default tiers).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import certifi
import httpx
import pytest

from devtools.containers.engine import Engine
from devtools.stack import free_port
from tests.containers.project import COMPOSE, Deployed, leftovers

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("CATALOG_TEST_BACKEND") != "containers",
        reason="the container tier runs with CATALOG_TEST_BACKEND=containers (ops/test runs it after the others)",
    ),
    # The first `up` on a machine without registry access builds the base images (~3 min).
    pytest.mark.timeout(1500),
]


@pytest.fixture(scope="module")
def deployed(container_engine: Engine) -> Iterator[Deployed]:
    project = f"catalogtest{os.getpid()}"
    http_port = free_port()
    env = {**os.environ, "CATALOG_PROMETHEUS_PORT": str(free_port())}
    engine = container_engine  # ops/compose finds the session's service and uses it
    command = [COMPOSE, "up", "--project", project, "--http-port", str(http_port), "--instances", "2"]
    up = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200, check=False)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield Deployed(project, f"http://127.0.0.1:{http_port}", engine, up.stdout)
    finally:
        down = subprocess.run(
            [COMPOSE, "down", "--volumes", "--project", project],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert down.returncode == 0, down.stdout + down.stderr
        assert leftovers(engine, project) == [], "down --volumes leaves no container, volume or network"


def test_up_ends_healthy_with_the_smoke_check_green(deployed: Deployed) -> None:
    out = deployed.up_output
    assert "containers healthy" in out
    steps = [line.strip() for line in out.splitlines() if line.startswith(("  ok ", "  FAIL"))]
    names = " ".join(steps)
    for step in (
        "replica streams",
        "replica-2 streams",
        "readyz",
        "write",
        "read-your-writes",
        "invalidation",
        "checkout",
    ):
        assert step in names, step
    assert all(s.startswith("ok") for s in steps), steps
    assert f"catalog is up in containers: {deployed.url}" in out


def test_status_reports_every_service_ready(deployed: Deployed) -> None:
    result = deployed.compose("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    services = {c["service"]: c for c in status["containers"]}
    assert status["ready"] is True
    assert {"primary", "replica", "replica-2", "redis", "app", "nginx", "migrate", "prometheus"} <= set(services)
    for name in ("primary", "replica", "replica-2", "redis", "app", "nginx"):
        assert services[name]["health"] == "healthy", name


def test_replicas_stream_the_primarys_rows(deployed: Deployed) -> None:
    sql = "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver), (SELECT count(*) FROM products)"
    for service in ("replica", "replica-2"):
        (container,) = deployed.containers(service)
        out = deployed.engine.run("exec", container, "psql", "-U", "postgres", "-d", "catalog", "-tAc", sql).stdout
        recovery, receiver, rows = out.strip().split("|")
        assert (recovery, receiver) == ("t", "streaming"), service
        assert int(rows) > 0


def test_a_restarted_app_container_takes_traffic_at_its_new_address(deployed: Deployed) -> None:
    """nginx resolves `app` again: after the restart no request fails, and the restarted
    instance (new address, same host name) answers again through nginx."""
    target = deployed.containers("app")[0]
    name = deployed.engine.inspect([target])[0]["Config"]["Hostname"]  # type: ignore[index]
    old_address = deployed.address(target)
    statuses: list[tuple[float, int]] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=deployed.url, timeout=5.0) as client:
            while not stop.is_set():
                try:
                    statuses.append((time.monotonic(), client.get("/products/2").status_code))
                except httpx.HTTPError:
                    statuses.append((time.monotonic(), 0))
                time.sleep(0.01)

    reader = threading.Thread(target=stream)
    reader.start()
    try:
        time.sleep(1.0)
        deployed.engine.run("restart", target, timeout=120)
        back = time.monotonic()
        assert deployed.address(target) != old_address, "the engine gave the restarted container a new address"
        answered_by: collections.Counter[str] = collections.Counter()
        with httpx.Client(base_url=deployed.url, timeout=5.0) as client:
            deadline = back + 30
            while answered_by[name] == 0 and time.monotonic() < deadline:
                answered_by[client.get("/readyz").json()["instance"]] += 1
                time.sleep(0.05)
        time.sleep(3.0)
    finally:
        stop.set()
        reader.join()
    assert answered_by[name] > 0, f"the restarted instance never answered through nginx: {dict(answered_by)}"
    after = collections.Counter(code for at, code in statuses if at > back)
    assert after, "the stream of GETs ran on after the restart"
    assert set(after) == {200}, f"after the restart: {dict(after)}"


def _certificates(text: str) -> list[str]:
    """The base64 bodies of the PEM certificates in ``text``, one string each."""
    bodies, current = [], None
    for line in text.splitlines():
        if line.startswith("-----BEGIN"):
            current = []
        elif line.startswith("-----END") and current is not None:
            bodies.append("".join(current))
            current = None
        elif current is not None:
            current.append(line.strip())
    return bodies


def test_the_image_keeps_no_build_ca(deployed: Deployed) -> None:
    """The build may be given a proxy's CA (ops/compose passes $PIP_CERT here); no layer keeps it.

    Looked for: the certificates of that file that neither pip's bundle nor Debian's (both in the
    image, rightly) hold, i.e. the proxy's own."""
    ca = os.environ.get("CATALOG_BUILD_CA_FILE") or os.environ.get("PIP_CERT")
    if not ca or not Path(ca).is_file():
        pytest.skip("this build was given no CA")
    public = set(_certificates(Path(certifi.where()).read_text()))
    for path in Path("/usr/share/ca-certificates").rglob("*.crt"):
        public.update(_certificates(path.read_text(errors="replace")))
    extra = [body for body in _certificates(Path(ca).read_text()) if body not in public]
    if not extra:
        pytest.skip("the CA file given to the build holds only public roots")
    markers = [body[100:164] for body in extra]  # a run of each certificate's base64
    patterns = " ".join(f"-e '{marker}'" for marker in markers)
    script = (
        "grep -rl 'BEGIN CERTIFICATE' /opt/venv /srv/catalog /usr/local /etc/ssl /tmp 2>/dev/null"
        f' | while read -r f; do tr -d \'\\n\' < "$f" | grep -qF {patterns} && echo "$f"; done; true'
    )
    found = deployed.engine.run("run", "--rm", "--entrypoint", "sh", "catalog:latest", "-c", script, timeout=300)
    assert found.stdout.strip() == "", f"build CA certificates found in: {found.stdout.strip()}"

"""One compose project on an engine: its settings, the images it builds, up/down, and the
containers' health. Its files: compose.yaml (one primary and its replicas) or, for the HA
topology, compose.ha.yaml (Patroni, etcd, HAProxy); either with compose.cluster.yaml for a Redis
Cluster. Which topology a project has is saved with its settings, so later commands find it.

Settings come, in this order of precedence, from the command line, the exported environment,
``.run/compose/<project>.env`` (written on the first ``up``: generated secrets, the chosen base
images and ports, so a second ``up`` finds the volumes' passwords again), then defaults.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devtools.containers.engine import Engine, EngineError
from devtools.containers.images import resolve_base_images

ROOT = Path(__file__).resolve().parents[3]
RUN_DIR = ROOT / ".run" / "compose"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
SECRETS = (
    "POSTGRES_PASSWORD",
    "REPLICATION_PASSWORD",
    "CATALOG_APP_DB_PASSWORD",
    "CATALOG_ADMIN_TOKEN",
    "CATALOG_RYW_SECRET",
    "PATRONI_API_PASSWORD",  # compose.ha.yaml: the Patroni REST API's unsafe endpoints
)
DEFAULTS = {
    "CATALOG_HTTP_PORT": "8080",
    "CATALOG_PROMETHEUS_PORT": "9090",
    # ops/compose serves plain HTTP on the machine; a deployment behind TLS sets true.
    "CATALOG_RYW_COOKIE_SECURE": "false",
}
BASE_KEYS = ("postgres", "redis", "nginx", "prometheus", "python")
HA_BASE_KEYS = ("etcd", "haproxy")
TOPOLOGY = "CATALOG_COMPOSE_TOPOLOGY"  # saved: "ha" or "single"
ONE_SHOT = {"migrate", "redis-cluster-init"}
HEALTH_EVERY_S = 3.0  # podman without systemd: how often a due healthcheck is run for it


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    state: str  # running, exited, created...
    exit_code: int
    health: str | None  # healthy, unhealthy, starting; None without a healthcheck
    interval_s: float

    @property
    def ready(self) -> bool:
        if self.service in ONE_SHOT:
            return self.state == "exited" and self.exit_code == 0
        return self.state == "running" and self.health in (None, "healthy")


@dataclass
class Project:
    engine: Engine
    name: str = "catalog"
    redis_cluster: bool = False
    ha: bool = False  # compose.ha.yaml instead of compose.yaml
    instances: int = 2
    overrides: dict[str, str] = field(default_factory=dict)  # from the command line

    @property
    def env_file(self) -> Path:
        return RUN_DIR / f"{self.name}.env"

    # --- settings -------------------------------------------------------------------------
    def saved(self) -> dict[str, str]:
        if not self.env_file.exists():
            return {}
        values = {}
        for line in self.env_file.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
        return values

    def settings(self, say: Callable[[str], None] | None = None, *, resolve_images: bool = False) -> dict[str, str]:
        """Every variable compose.yaml reads: flag > environment > saved file > default/generated."""
        saved = self.saved()
        values: dict[str, str] = {}
        keys = (*SECRETS, *DEFAULTS)
        for key in keys:
            given = self.overrides.get(key) or os.environ.get(key)
            if key in SECRETS and given and saved.get(key) and given != saved[key]:
                raise EngineError(
                    f"{key} is set to another value than the one this project's volumes were made with "
                    f"({self.env_file}): unset it, or `ops/compose down --volumes` to start afresh"
                )
            chosen = given or saved.get(key)
            if chosen is None:
                chosen = DEFAULTS.get(key) or secrets.token_urlsafe(24)
            values[key] = chosen
        image_vars = {k: v for k, v in saved.items() if k.endswith("_IMAGE")}
        if resolve_images:
            keys = (*BASE_KEYS, *HA_BASE_KEYS) if self.ha else BASE_KEYS
            image_vars |= resolve_base_images(self.engine, keys, say or (lambda _: None), environ=dict(os.environ))
        values.update({k: os.environ.get(k) or v for k, v in image_vars.items()})
        values[TOPOLOGY] = "ha" if self.ha else "single"
        return values

    def saved_topology(self) -> str | None:
        """``ha`` or ``single`` as the project was last brought up; None for a project never up.
        Settings saved before the HA topology existed name none: those are single-primary."""
        saved = self.saved()
        return saved.get(TOPOLOGY) or ("single" if saved else None)

    def follow_saved_topology(self) -> None:
        """A command other than ``up`` works on the topology the project was brought up with."""
        self.ha = self.ha or self.saved_topology() == "ha"

    def save(self, values: dict[str, str]) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        lines = [
            "# ops/compose settings of this project (generated secrets, base images, ports).",
            "# Flags and exported variables override them; `ops/compose down --volumes` deletes this file.",
            *(f"{k}={v}" for k, v in sorted(values.items())),
        ]
        fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")

    # --- compose ---------------------------------------------------------------------------
    def compose(self, *args: str, values: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
        files = ["-f", str(ROOT / ("compose.ha.yaml" if self.ha else "compose.yaml"))]
        if self.redis_cluster:
            files += ["-f", str(ROOT / "compose.cluster.yaml")]
        command = [*self.engine.compose, "-p", self.name, *files, *args]
        try:
            result = subprocess.run(
                command, cwd=ROOT, env=self.engine.environ(values), capture_output=True, text=True,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EngineError(
                f"`{' '.join(command[:2])} {' '.join(args[:2])}` did not finish in {timeout:.0f} s"
            ) from exc
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-12:])
            raise EngineError(f"compose {' '.join(args[:1])} failed:\n{tail}")
        return result

    def build(self, values: dict[str, str], ca_file: Path | None, target: str = "runtime") -> float:
        """An image of the Dockerfile, with pip trusting ``ca_file`` while it runs: the app
        (``runtime``: catalog:latest) or a Patroni member (``patroni``: catalog-patroni:latest)."""
        started = time.monotonic()
        if target == "patroni":
            tag, base = "catalog-patroni:latest", f"POSTGRES_IMAGE={values['CATALOG_POSTGRES_IMAGE']}"
        else:
            tag, base = "catalog:latest", f"PYTHON_IMAGE={values['CATALOG_PYTHON_IMAGE']}"
        with _secret_file(ca_file) as secret:
            args = [
                "build", "--target", target, "-t", tag, "--build-arg", base,
                "--secret", f"id=extra_ca,src={secret}", "-f", str(ROOT / "Dockerfile"), str(ROOT),
            ]  # fmt: skip
            if self.engine.kind == "podman":
                args.insert(1, "--format=docker")  # keeps HEALTHCHECK in the image
            extra = {} if self.engine.kind == "podman" else {"DOCKER_BUILDKIT": "1"}
            result = subprocess.run(
                [self.engine.cli, *args], env=self.engine.environ(extra), capture_output=True, text=True, check=False
            )
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-12:])
            raise EngineError(f"building {tag} failed:\n{tail}")
        return time.monotonic() - started

    # --- containers ------------------------------------------------------------------------
    def containers(self) -> list[Container]:
        listed = self.engine.run("ps", "-a", "-q", "--filter", f"label={PROJECT_LABEL}={self.name}")
        found = []
        for info in self.engine.inspect(listed.stdout.split()):
            found.append(_container(info))
        return sorted(found, key=lambda c: c.name)

    def run_healthchecks(self, containers: list[Container], last_run: dict[str, float]) -> None:
        """podman without systemd: run every healthcheck that is due (at most every 3 s)."""
        now = time.monotonic()
        for c in containers:
            if c.state != "running" or c.health is None:
                continue
            if now - last_run.get(c.id, 0.0) < min(c.interval_s, HEALTH_EVERY_S):
                continue
            last_run[c.id] = now
            self.engine.run("healthcheck", "run", c.id, check=False, timeout=30)

    @contextmanager
    def healthchecks_driven(self) -> Iterator[None]:
        """Run due healthchecks in the background for as long as the block runs (podman only)."""
        if not self.engine.drives_health:
            yield
            return
        stop = threading.Event()
        last_run: dict[str, float] = {}

        def drive() -> None:
            while not stop.wait(0.5):
                try:
                    self.run_healthchecks(self.containers(), last_run)
                except EngineError:
                    continue

        worker = threading.Thread(target=drive, name="healthchecks", daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=35)

    def wait_ready(self, timeout_s: float, say: Callable[[str], None]) -> list[Container]:
        """Until every service container is healthy (one-shot ones exited 0)."""
        deadline = time.monotonic() + timeout_s
        shown = ""
        while True:
            containers = self.containers()
            failed = [
                c
                for c in containers
                if c.health == "unhealthy" or (c.service in ONE_SHOT and c.state == "exited" and c.exit_code != 0)
            ]
            if failed:
                raise EngineError(
                    f"{', '.join(c.name for c in failed)}: failed (see `ops/compose logs {failed[0].service}`)"
                )
            waiting = [c for c in containers if not c.ready]
            if containers and not waiting:
                return containers
            line = "waiting for: " + ", ".join(f"{c.service} ({c.health or c.state})" for c in waiting)
            if line != shown:
                say(line)
                shown = line
            if time.monotonic() > deadline:
                raise EngineError(f"not healthy after {timeout_s:.0f} s: {line.removeprefix('waiting for: ')}")
            time.sleep(1.0)


def _container(info: dict[str, object]) -> Container:
    config = info.get("Config")
    state = info.get("State")
    config = config if isinstance(config, dict) else {}
    state = state if isinstance(state, dict) else {}
    labels = config.get("Labels") or {}
    health = state.get("Health") or state.get("Healthcheck")
    check = config.get("Healthcheck") or {}
    interval_ns = check.get("Interval") if isinstance(check, dict) else None
    has_check = isinstance(check, dict) and bool(check.get("Test")) and check.get("Test") != ["NONE"]
    status = health.get("Status") if isinstance(health, dict) else None
    return Container(
        id=str(info.get("Id", ""))[:12],
        name=str(info.get("Name", "")).lstrip("/"),
        service=str(labels.get(SERVICE_LABEL, "?")) if isinstance(labels, dict) else "?",
        state=str(state.get("Status", "unknown")),
        exit_code=int(state.get("ExitCode") or 0),
        health=(str(status) if status else "starting") if has_check else None,
        interval_s=(int(interval_ns) / 1e9) if isinstance(interval_ns, int) and interval_ns > 0 else 5.0,
    )


@contextmanager
def _secret_file(ca_file: Path | None) -> Iterator[Path]:
    """The extra CA to hand the build, or an empty file (the build then trusts only pip's own)."""
    if ca_file is not None:
        if not ca_file.is_file():
            raise EngineError(f"CA file {ca_file} does not exist")
        yield ca_file
        return
    with tempfile.NamedTemporaryFile(prefix="catalog-no-ca-") as empty:
        yield Path(empty.name)


def describe(containers: list[Container]) -> list[dict[str, object]]:
    return [
        {"service": c.service, "container": c.name, "state": c.state, "health": c.health, "ready": c.ready}
        for c in containers
    ]


def dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True)

"""The container files, checked statically (the container tier, tests/containers, runs them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from devtools.stack import Stack, StackConfig

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", ["compose.yaml", "compose.cluster.yaml", "compose.ha.yaml"])
def test_compose_files_match_the_compose_spec(name: str) -> None:
    result = _run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_ha_file_hands_failover_to_patroni_behind_haproxy() -> None:
    """compose.ha.yaml: three etcd members, three Patroni members, HAProxy; no fixed primary, and
    the app finds the primary through HAProxy and the replicas through Patroni."""
    services = yaml.safe_load((ROOT / "compose.ha.yaml").read_text())["services"]
    assert not {"primary", "replica", "replica-2"} & set(services)
    etcd = [name for name in services if name.startswith("etcd-")]
    members = [name for name in services if name.startswith("pg-")]
    assert len(etcd) == len(members) == 3
    cluster = services["etcd-1"]["environment"]["ETCD_INITIAL_CLUSTER"]
    assert sorted(p.split("=")[0] for p in cluster.split(",")) == etcd
    for name in members:
        assert services[name]["build"]["target"] == "patroni"
        assert services[name]["environment"]["PATRONI_NAME"] == name
        assert set(services[name]["depends_on"]) == set(etcd)
    assert set(services["haproxy"]["depends_on"]) == set(members)
    haproxy = (ROOT / "ops" / "containers" / "haproxy.cfg").read_text()
    assert "option httpchk OPTIONS /primary" in haproxy
    assert all(f"server {m} {m}:5432 check port 8008" in haproxy for m in members)
    env = services["app"]["environment"]
    assert "@haproxy:5432/" in env["CATALOG_PRIMARY_DSN"]
    assert "CATALOG_REPLICA_DSNS" not in env
    assert env["CATALOG_REPLICA_PATRONI_URLS"].split(",") == [f"http://{m}:8008" for m in members]


def test_the_cluster_override_gives_the_app_a_cluster_it_waits_for() -> None:
    cluster = yaml.safe_load((ROOT / "compose.cluster.yaml").read_text())
    services = cluster["services"]
    nodes = [name for name in services if name.startswith("redis-node-")]
    assert len(nodes) == 6, "three masters with a replica each"
    for name in nodes:
        assert "--cluster-enabled" in services[name]["command"]
    init = services["redis-cluster-init"]
    assert "--cluster-replicas 1" in " ".join(init["entrypoint"])
    assert set(init["depends_on"]) == set(nodes)
    app = services["app"]
    assert app["environment"]["CATALOG_REDIS_CLUSTER"] == "true"
    assert app["depends_on"]["redis-cluster-init"]["condition"] == "service_completed_successfully"
    named = app["environment"]["CATALOG_REDIS_URL"].removeprefix("redis://").split("/")[0].split(",")
    assert {n.split(":")[0] for n in named} <= set(nodes)


def test_dockerfile_passes_hadolint() -> None:
    result = _run(str(BIN / "hadolint"), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_wires_health_and_order() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["app"]["deploy"]["replicas"] >= 2
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("primary", "replica", "redis", "app", "nginx"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            assert rule["condition"] == expected, (name, dependency)
    assert "pg_basebackup" in (ROOT / "ops" / "containers" / "postgres-replica-entrypoint.sh").read_text()
    assert services["load"]["profiles"] == ["load"]
    nginx_volumes = " ".join(services["nginx"]["volumes"])
    assert "ops/nginx/catalog.conf.template" in nginx_volumes, "compose uses the same nginx template as ops/dev"


def test_compose_runs_two_replicas_every_instance_reads_from() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [name for name, s in services.items() if s.get("entrypoint") == ["/replica-entrypoint.sh"]]
    assert sorted(replicas) == ["replica", "replica-2"]
    dsns = services["app"]["environment"]["CATALOG_REPLICA_DSNS"].split(",")
    assert sorted(dsn.split("@")[1].split(":")[0] for dsn in dsns) == sorted(replicas)
    assert "max_connections=300" in services["primary"]["command"]
    for name in replicas:
        assert services[name]["environment"]["REPLICA_MAX_CONNECTIONS"] == "300", "a standby below its primary's"
        assert services[name]["volumes"][0].endswith("-data:/var/lib/postgresql/data")
        assert services["app"]["depends_on"][name]["condition"] == "service_healthy"
    assert len({services[name]["volumes"][0] for name in replicas}) == len(replicas), "one volume each"


def test_dockerfile_runs_the_same_server_as_ops_dev() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "app", "serve"' in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert "USER 10001:10001" in dockerfile


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx")
def test_nginx_template_renders_and_nginx_accepts_it(tmp_path: Path) -> None:
    stack = Stack(StackConfig(run_dir=str(tmp_path), base_dir=str(tmp_path / "base")), quiet=True)
    (tmp_path / "base" / "nginx").mkdir(parents=True)
    (tmp_path / "base" / "pids").mkdir()
    (tmp_path / "base" / "logs").mkdir()
    site = stack.nginx.render_site()
    assert re.search(r"\$\{CATALOG_[A-Z_]+\}", site) is None
    assert "non_idempotent" not in site.split("proxy_next_upstream ", 1)[1].split(";", 1)[0]
    main = stack.nginx.write_conf()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path / "base" / "nginx"), "-c", str(main)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """(instruction, arguments) per build stage, keyed by the stage's ``AS`` name."""
    text = (ROOT / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)  # join continuation lines
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            name = re.search(r"\sAS\s+(\S+)", args, re.IGNORECASE)
            assert name is not None, f"every stage is named: {line}"
            current = stages.setdefault(name.group(1), [])
        current.append((instruction.upper(), args.strip()))
    return stages


def _copies(stage: list[tuple[str, str]]) -> list[tuple[dict[str, str], list[str]]]:
    """(flags, sources) of each COPY or ADD in ``stage``."""
    found = []
    for instruction, args in stage:
        if instruction not in ("COPY", "ADD"):
            continue
        flags: dict[str, str] = {}
        rest: list[str] = []
        for word in args.split():
            if word.startswith("--"):
                key, _, value = word.removeprefix("--").partition("=")
                flags[key] = value
            else:
                rest.append(word)
        paths = json.loads(" ".join(rest)) if rest and rest[0].startswith("[") else rest
        found.append((flags, paths[:-1]))  # the last path is the destination
    return found


def test_image_holds_no_dev_code() -> None:
    """The service image (the ``runtime`` target) gets code only from ``app/`` and ``sql/``.

    (The ``load`` target adds locust and ``tests/load`` on top, for the compose load profile.)
    """
    stages = _dockerfile_stages()
    assert _copies(stages["build"]) == [
        ({}, ["pyproject.toml", "requirements.txt"]),
        ({}, ["ops/containers/pip-with-extra-ca.sh"]),
    ]
    runtime_sources: list[str] = []
    for flags, sources in _copies(stages["runtime"]):
        if "from" in flags:
            assert flags["from"] == "build", "the runtime stage copies only the build stage's venv"
            continue
        runtime_sources += sources
    assert sorted(runtime_sources) == ["app", "sql"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["app*"]


def test_the_package_holds_no_dev_code() -> None:
    """What ``COPY app`` ships: no launcher, no benchmarks (the import rule is in tests/unit/test_architecture.py)."""
    shipped = {p.relative_to(ROOT / "app").parts[0] for p in (ROOT / "app").rglob("*.py")}
    assert not shipped & {"devstack", "bench", "devtools"}


def test_an_extra_ca_reaches_pip_only_as_a_build_secret() -> None:
    """A TLS-intercepting proxy's CA is mounted while pip runs and never copied into a layer."""
    stages = _dockerfile_stages()
    for name in ("build", "load"):
        pip_runs = [
            args
            for instruction, args in stages[name]
            if instruction == "RUN" and "pip-with-extra-ca.sh install" in args
        ]
        assert pip_runs, f"{name}: pip runs through the wrapper"
        assert all(args.startswith("--mount=type=secret,id=extra_ca ") for args in pip_runs), name
    for stage in stages.values():
        for _, sources in _copies(stage):
            assert not any(Path(s).stem == "ca" or s.endswith((".crt", ".pem")) for s in sources)
    wrapper = (ROOT / "ops" / "containers" / "pip-with-extra-ca.sh").read_text()
    assert "trap 'rm -f \"$bundle\"' EXIT" in wrapper, "the combined bundle is removed when pip ends"

"""The HA topology's config (``ops/dev up --ha``): which services, which ports, and what the apps
and tools are told (no services are started here; tests/system/test_ha.py starts them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.stack import Stack, StackConfig
from devtools.stack.__main__ import main
from devtools.stack.config import StackError


def _ha(**fields: object) -> StackConfig:
    return StackConfig(run_dir="run", base_dir="base", ha=True, **fields)  # type: ignore[arg-type]


def test_patroni_members_replace_the_primary_and_its_replicas() -> None:
    config = _ha()
    assert config.services == ("etcd", "pg-1", "pg-2", "pg-3", "haproxy", "redis", "app-1", "app-2", "nginx")
    assert config.ports_of("pg-2") == [55442, 58442]  # Postgres, Patroni's REST API
    assert config.ports_of("etcd") == [52379, 52380]  # client, peer
    assert config.port_of("haproxy") == config.primary_port
    config.check_ports()


def test_the_apps_reach_the_primary_through_haproxy_and_learn_replicas_from_patroni() -> None:
    env = _ha().app_env(0)
    assert env["CATALOG_PRIMARY_DSN"] == "postgresql://catalog_app@127.0.0.1:55432/catalog"
    assert env["CATALOG_REPLICA_DSNS"] == ""
    assert env["CATALOG_REPLICA_PATRONI_URLS"].split(",") == [f"http://127.0.0.1:{p}" for p in (58441, 58442, 58443)]
    assert _ha().stack_env()["CATALOG_REPLICA_PATRONI_URLS"] == env["CATALOG_REPLICA_PATRONI_URLS"]
    assert "CATALOG_REPLICA_PATRONI_URLS" not in StackConfig(run_dir="run", base_dir="base").app_env(0)


def test_a_member_port_landing_on_another_service_is_refused() -> None:
    with pytest.raises(StackError, match="port 8080"):
        _ha(member_ports=[55441, 55442, 8080]).check_ports()


def test_a_stack_made_without_ha_is_not_turned_into_one_over_its_data(tmp_path: Path) -> None:
    stack = Stack.load_or_create(tmp_path, env={})
    stack.save()
    stack.base_dir.mkdir(parents=True)
    try:
        with pytest.raises(StackError, match="without the HA topology"):
            Stack.load_or_create(tmp_path, ha=True, env={})
    finally:
        stack.base_dir.rmdir()


def test_failover_is_refused_where_patroni_decides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = Stack.load_or_create(tmp_path, ha=True, env={})
    stack.save()
    assert main(["--run-dir", str(tmp_path), "failover"]) == 2
    assert "Patroni decides" in capsys.readouterr().err

"""``ops/dev up --replicas N --instances M``: ports, names, the stack.env contract, and a stack that
keeps the numbers it was made with (no services are started here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.settings import load_settings
from devtools.stack import Stack, StackConfig, StackError
from devtools.stack.config import topology_ports

MANUAL_TRY = {"CATALOG_DEV_REPLICA_PORT": "51433", "CATALOG_DEV_APP_1_PORT": "51001", "CATALOG_DEV_APP_2_PORT": "51002"}


def test_default_ports_are_the_ones_a_stack_always_had() -> None:
    assert topology_ports({}, 1, 2) == {"replica_ports": [55433], "app_ports": [8001, 8002]}


def test_further_replicas_and_instances_follow_on_unless_their_variable_says_otherwise() -> None:
    assert topology_ports(MANUAL_TRY, 2, 3) == {"replica_ports": [51433, 51434], "app_ports": [51001, 51002, 51003]}
    env = {**MANUAL_TRY, "CATALOG_DEV_REPLICA_2_PORT": "52000"}
    assert topology_ports(env, 3, 1)["replica_ports"] == [51433, 52000, 52001]


def test_stack_env_lists_every_replica_and_instance_and_each_app_gets_every_replica() -> None:
    config = StackConfig(
        run_dir="/r", base_dir="/b", replica_ports=[51433, 51434], app_ports=[51001, 51002, 51003], ryw_secret="s" * 32
    )
    assert config.services == (
        "primary", "replica-1", "replica-2", "redis", "app-1", "app-2", "app-3", "nginx",
    )  # fmt: skip
    env = config.stack_env()
    assert env["CATALOG_REPLICA_DSNS"].split(",") == [
        "postgresql://postgres@127.0.0.1:51433/catalog",
        "postgresql://postgres@127.0.0.1:51434/catalog",
    ]
    assert env["CATALOG_APP_URLS"].count(",") == 2
    app_env = config.app_env(2)
    settings = load_settings(app_env)  # the instance splits the list as it will at start-up
    app_dsns = settings.replicas.dsns
    # Each replica slot: its own node, then the primary's (a standby after a failover; ADR 0014).
    assert app_dsns == (
        "postgresql://catalog_app@127.0.0.1:51433,127.0.0.1:55432/catalog?target_session_attrs=standby",
        "postgresql://catalog_app@127.0.0.1:51434,127.0.0.1:55432/catalog?target_session_attrs=standby",
    )
    assert settings.db.primary_dsn == (
        "postgresql://catalog_app@127.0.0.1:55432,127.0.0.1:51433,127.0.0.1:51434/catalog?target_session_attrs=primary"
    )


def test_two_services_on_one_port_are_refused_with_the_variable_to_set() -> None:
    config = StackConfig(run_dir="/r", base_dir="/b", primary_port=51434, replica_ports=[51433, 51434])
    with pytest.raises(StackError, match="CATALOG_DEV_REPLICA_2_PORT"):
        config.check_ports()


def _made(tmp_path: Path, *, replicas: int, instances: int, with_data: bool) -> Path:
    run_dir = tmp_path / "run"
    stack = Stack.load_or_create(run_dir, replicas=replicas, instances=instances, env=MANUAL_TRY)
    stack.save()
    if with_data:
        stack.base_dir.mkdir(parents=True)
    return run_dir


def test_up_again_keeps_the_numbers_the_stack_was_made_with(tmp_path: Path) -> None:
    run_dir = _made(tmp_path, replicas=2, instances=3, with_data=True)
    again = Stack.load_or_create(run_dir, env={})
    assert (again.config.replica_ports, again.config.app_ports) == ([51433, 51434], [51001, 51002, 51003])
    assert Stack.load_or_create(run_dir, replicas=2, instances=3).config == again.config


def test_other_numbers_on_an_existing_stack_are_refused_saying_what_to_do(tmp_path: Path) -> None:
    run_dir = _made(tmp_path, replicas=2, instances=3, with_data=True)
    with pytest.raises(StackError) as refused:
        Stack.load_or_create(run_dir, replicas=3)
    message = str(refused.value)
    assert "\n" not in message
    assert "2 replicas and 3 instances" in message
    assert "ops/dev destroy" in message
    assert "--replicas 2 --instances 3" in message


def test_a_destroyed_stack_takes_new_numbers_and_keeps_its_ports(tmp_path: Path) -> None:
    run_dir = _made(tmp_path, replicas=2, instances=3, with_data=False)
    stack = Stack.load_or_create(run_dir, replicas=3, instances=1, env={})
    assert (stack.config.replica_ports, stack.config.app_ports) == ([51433, 51434, 51435], [51001])


def test_a_stack_made_before_several_replicas_still_loads(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    old = {"run_dir": str(run_dir), "base_dir": str(tmp_path / "b"), "replica_port": 51433, "app_ports": [51001]}
    (run_dir / "stack.json").write_text(json.dumps(old))
    stack = Stack.load_or_create(run_dir)
    assert stack.config.replicas == ("replica-1",)
    assert stack.config.replica_port == 51433
    # Its replica's data directory is where it always was.
    assert stack.layout.data_dir("replica-1") == tmp_path / "b" / "replica"


def test_replica_still_names_the_first_replica_and_unknown_services_are_refused(tmp_path: Path) -> None:
    stack = Stack(StackConfig(run_dir=str(tmp_path), base_dir=str(tmp_path / "b"), replica_ports=[1, 2]))
    stack.stop("replica")  # not running: nothing to do, but the name is accepted
    stack.stop("replica-2")
    with pytest.raises(StackError, match="replica-3"):
        stack.stop("replica-3")


def test_a_redis_cluster_takes_six_ports_from_the_first_and_says_so_in_every_env() -> None:
    config = StackConfig(run_dir="/r", base_dir="/b", redis_port=52379, redis_cluster=True)
    assert config.redis_nodes == tuple(f"redis-{i}" for i in range(1, 7))
    assert [config.port_of(n) for n in config.redis_nodes] == list(range(52379, 52385))
    assert "redis" not in config.services
    url = "redis://" + ",".join(f"127.0.0.1:{p}" for p in range(52379, 52385)) + "/0"
    for env in (config.stack_env(), config.app_env(0)):
        assert (env["CATALOG_REDIS_URL"], env["CATALOG_REDIS_CLUSTER"]) == (url, "true")
    single = StackConfig(run_dir="/r", base_dir="/b")
    assert "CATALOG_REDIS_CLUSTER" not in single.stack_env()
    assert single.redis_url == "redis://127.0.0.1:56379/0"


def test_a_stack_with_data_keeps_its_kind_of_redis(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    Stack.load_or_create(run_dir, redis_cluster=True, env={}).save()
    assert Stack.load_or_create(run_dir, env={}).config.redis_cluster
    (Stack.load_or_create(run_dir, env={}).base_dir).mkdir(parents=True)
    with pytest.raises(StackError, match="Redis Cluster"):
        Stack.load_or_create(run_dir, redis_cluster=False, env={})

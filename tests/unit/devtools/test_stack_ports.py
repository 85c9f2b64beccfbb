"""``ops/dev`` settings precedence: a port variable that is set wins over ``.run/stack.json``. A
stack without data takes it at once, a stopped one moves to it, a running one is refused with
the reason; ``destroy`` forgets the saved ports; a variable that is not a port is a one-line
usage error (no services are started here)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

import pytest

from devtools.stack import Stack, StackConfig, free_port
from devtools.stack.__main__ import main
from devtools.stack.config import StackError, port_open
from devtools.stack.ports import UsageError


def _saved_stack(run_dir: Path, *, with_data: bool) -> Stack:
    stack = Stack.load_or_create(run_dir, env={})
    stack.save()
    if with_data:
        stack.base_dir.mkdir(parents=True)
    return stack


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def test_a_variable_that_is_not_a_port_is_one_usage_line(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match=r"CATALOG_DEV_PRIMARY_PORT='abc' is not a port number"):
        Stack.load_or_create(run_dir, env={"CATALOG_DEV_PRIMARY_PORT": "abc"})
    with pytest.raises(UsageError, match="out of range"):
        Stack.load_or_create(run_dir, env={"CATALOG_DEV_APP_2_PORT": "70000"})


def test_ops_dev_status_with_a_bad_port_exits_2_without_a_traceback(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_DEV_PRIMARY_PORT", "abc")
    assert main(["--run-dir", str(run_dir), "status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "CATALOG_DEV_PRIMARY_PORT='abc'" in err


def test_a_stack_without_data_takes_the_ports_the_environment_asks_for(run_dir: Path) -> None:
    _saved_stack(run_dir, with_data=False)
    stack = Stack.load_or_create(run_dir, env={"CATALOG_DEV_PRIMARY_PORT": "45432", "CATALOG_DEV_APP_2_PORT": "45002"})
    assert stack.config.primary_port == 45432
    assert stack.config.app_ports[1] == 45002
    assert [str(m) for m in stack.moved] == [
        "primary 55432 -> 45432 (CATALOG_DEV_PRIMARY_PORT)",
        "app-2 8002 -> 45002 (CATALOG_DEV_APP_2_PORT)",
    ]


def test_a_running_stack_is_not_moved_under_its_users(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _saved_stack(run_dir, with_data=True)
    monkeypatch.setattr(Stack, "running", lambda self, service: service == "primary")
    stack = Stack.load_or_create(run_dir, env={"CATALOG_DEV_NGINX_PORT": "48080"})
    assert stack.config.nginx_port == 8080, "loading a stack moves nothing: only `up` does"
    with pytest.raises(UsageError) as refused:
        stack.move_ports(stack.pending_moves)
    message = str(refused.value)
    assert "the stack is running (primary)" in message
    assert "nginx 8080 -> 48080 (CATALOG_DEV_NGINX_PORT)" in message
    assert "`ops/dev down` then `ops/dev up` moves it" in message


def test_the_same_ports_as_saved_are_no_move(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _saved_stack(run_dir, with_data=True)
    monkeypatch.setattr(Stack, "running", lambda self, service: True)
    stack = Stack.load_or_create(run_dir, env={"CATALOG_DEV_PRIMARY_PORT": "55432"})
    assert stack.pending_moves == []
    assert stack.moved == []


def test_destroy_forgets_the_saved_ports(run_dir: Path) -> None:
    stack = _saved_stack(run_dir, with_data=True)
    stack.destroy()
    assert not (run_dir / "stack.json").exists()
    assert not (run_dir / "stack.env").exists()
    again = Stack.load_or_create(run_dir, env={"CATALOG_DEV_PRIMARY_PORT": "45432"})
    assert again.config.primary_port == 45432
    assert again.config.admin_token != stack.config.admin_token, "a new stack gets new secrets"


def test_status_says_port_taken_when_another_program_holds_a_port(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setenv("CATALOG_DEV_NGINX_PORT", str(port))
        assert main(["--run-dir", str(run_dir), "status"]) == 1
    out = capsys.readouterr().out
    nginx = next(line for line in out.splitlines() if line.startswith("nginx"))
    assert "port taken" in nginx
    assert "another program listens on the port of nginx" in out
    assert "nothing runs: `ops/dev up`" in out


def test_only_up_moves_a_stack_other_commands_say_so(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved_stack(run_dir, with_data=True)
    monkeypatch.setenv("CATALOG_DEV_PRIMARY_PORT", "45432")
    assert main(["--run-dir", str(run_dir), "status"]) == 1
    captured = capsys.readouterr()
    assert "CATALOG_DEV_PRIMARY_PORT asks for 45432; primary stays on 55432 until `ops/dev up` moves it" in captured.err
    assert "55432" in next(line for line in captured.out.splitlines() if line.startswith("primary"))
    assert Stack.load_or_create(run_dir, env={}).config.primary_port == 55432


def _free_cluster_base(holder_port: int) -> bool:
    """The six node ports and their buses are free, but for the bus ``holder_port`` that collides."""
    base = holder_port - 10_000
    ports = [base + i for i in range(6)] + [base + 10_000 + i for i in range(1, 6)]
    return base > 1024 and not any(port_open(p) for p in ports)


def test_up_refuses_a_cluster_node_whose_bus_port_is_taken_naming_port_and_holder(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with contextlib.ExitStack() as held:
        while True:  # another program on what would be redis-1's cluster bus port
            holder = held.enter_context(socket.socket())
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            bus = holder.getsockname()[1]
            if _free_cluster_base(bus):
                break
        for variable in ("PRIMARY", "REPLICA", "APP_1", "APP_2", "NGINX"):
            monkeypatch.setenv(f"CATALOG_DEV_{variable}_PORT", str(free_port()))
        monkeypatch.setenv("CATALOG_DEV_REDIS_PORT", str(bus - 10_000))
        started = time.monotonic()
        assert main(["--run-dir", str(run_dir), "up", "--redis-cluster"]) == 1
        elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert f"port {bus} (the cluster bus port of redis-1" in err, err
    assert f"(pid {os.getpid()})" in err, "the holder is named: this test's own process"
    assert elapsed < 2.0, f"refused in {elapsed:.1f} s, before anything started"


def test_a_cluster_whose_bus_ports_would_pass_65535_is_refused() -> None:
    config = StackConfig(run_dir="", base_dir="", redis_cluster=True, redis_port=56379)
    with pytest.raises(StackError, match=r"redis-1 on port 56379 would need cluster bus port 66379.*at most 55530"):
        config.check_ports()
    StackConfig(run_dir="", base_dir="", redis_cluster=True, redis_port=45530).check_ports()
    StackConfig(run_dir="", base_dir="", redis_port=56379).check_ports()  # one Redis has no bus


def test_a_bus_port_on_another_service_of_the_stack_is_refused() -> None:
    config = StackConfig(run_dir="", base_dir="", redis_cluster=True, redis_port=45428, primary_port=55432)
    with pytest.raises(StackError, match="primary and redis-5 would both use port 55432"):
        config.check_ports()

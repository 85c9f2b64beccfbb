"""``ops/dev`` settings precedence: a port variable that is set wins over ``.run/stack.json``. A
stack without data takes it at once, a stopped one moves to it, a running one is refused with
the reason; ``destroy`` forgets the saved ports; a variable that is not a port is a one-line
usage error (no services are started here)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devtools.stack import Stack
from devtools.stack.__main__ import main
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

"""Every ops command, times (no stack, bad value, flags before/after the command word, --json, 80
columns, piped), through the real launchers: a one-line error or a readable result, the
documented exit status (0 ok, 1 unhealthy or unreachable, 2 usage), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.table import ROWS, Row, never_set_up_env, no_stack_env, run, with_json

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return no_stack_env(tmp_path / "run")


@pytest.mark.parametrize("stack", ["down", "never set up"])
@pytest.mark.parametrize("row", ROWS, ids=str)
def test_no_stack_is_exit_1_and_says_what_to_run(row: Row, stack: str, tmp_path: Path) -> None:
    """Down: every setting points at a closed port. Never set up: every setting is empty."""
    make_env = no_stack_env if stack == "down" else never_set_up_env
    ran = run(row, row.command, make_env(tmp_path / "run"))
    assert ran.code == 1, (ran.code, ran.out, ran.err)
    assert ran.problems(row.tool) == []
    assert len([line for line in ran.err.splitlines() if line.strip()]) <= 1, ran.err
    said = ran.out + ran.err
    assert "ops/dev up" in said or "ops/compose up" in said or "ops/dev status" in said, said


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_a_bad_value_is_a_usage_error(row: Row, env: dict[str, str]) -> None:
    ran = run(row, row.bad, env)
    assert ran.code == 2, (ran.code, ran.out, ran.err)
    assert ran.problems(row.tool) == []
    assert ran.out == ""


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_json_with_no_stack_is_json_or_nothing(row: Row, env: dict[str, str]) -> None:
    ran = run(row, with_json(row, before=False), env)
    assert ran.code == 1, (ran.code, ran.out, ran.err)
    assert ran.problems(row.tool) == []
    assert ran.json_or_empty(), ran.out


@pytest.mark.parametrize("row", [r for r in ROWS if r.has_command_word], ids=str)
def test_global_flags_go_before_or_after_the_command_word(row: Row, env: dict[str, str]) -> None:
    before, after = run(row, with_json(row, before=True), env), run(row, with_json(row, before=False), env)
    assert before.code == after.code != 2, (before, after)
    assert before.json_or_empty()
    assert after.json_or_empty()


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_help_fits_80_columns(row: Row, env: dict[str, str]) -> None:
    ran = run(row, ("--help",), env)
    assert ran.code == 0
    assert ran.problems(row.tool) == []
    assert ran.out.startswith(f"usage: ops/{row.tool}")

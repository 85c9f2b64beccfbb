"""``ops/dev failover`` refuses clearly when it has nothing to promote (the drill itself runs in
tests/system/test_failover.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.stack import Stack, StackConfig, StackError
from devtools.stack.failover import choose_replica


def _stack(tmp_path: Path) -> Stack:
    return Stack(StackConfig(run_dir=str(tmp_path / "run"), base_dir=str(tmp_path / "base")), quiet=True)


def test_with_no_replica_running_there_is_nothing_to_promote(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no replica to promote"):
        choose_replica(_stack(tmp_path), None)


def test_a_named_replica_must_exist_and_run(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="replica-3 is not a replica of this stack"):
        choose_replica(_stack(tmp_path), "replica-3")
    with pytest.raises(StackError, match="replica-1 is not running"):
        choose_replica(_stack(tmp_path), "replica")

"""The README's walk-throughs, run as a user would run them, against a stack of their own.

Every ``console`` block of README.md runs (in order, each in one bash) with the stack's
``stack.env`` exported and ``CATALOG_DEV_RUN_DIR`` pointing ``ops/dev`` at it; what a command
prints must be what the README shows under it (tests/docs/console.py). A demo that prints nothing,
or a comment claiming what the command does not show, fails here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.stack import Stack
from tests.docs.console import Block, console_blocks, mismatch, run_block
from tests.fixtures.stack import own_stack

pytestmark = pytest.mark.system
ROOT = Path(__file__).resolve().parents[2]
BLOCKS = console_blocks(ROOT / "README.md")


@pytest.fixture(scope="module")
def readme_stack() -> Iterator[Stack]:
    with own_stack() as stack:
        yield stack


def _env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_")}
    env.update(stack.config.stack_env())
    env["CATALOG_DEV_RUN_DIR"] = str(stack.run_dir)
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.line}-{b.title}" for b in BLOCKS])
def test_readme_block_prints_what_the_readme_says(block: Block, readme_stack: Stack, tmp_path: Path) -> None:
    env = _env(readme_stack)
    # Run where a user would (ops/... relative to the checkout), but let cookie jars and the like
    # land in the test's own directory: the commands find ops/ through a link.
    (tmp_path / "ops").symlink_to(ROOT / "ops")
    outputs = run_block(block, env, cwd=tmp_path, timeout=180)
    problem = mismatch(block, outputs)
    assert problem is None, f"{block.title}:\n{problem}"

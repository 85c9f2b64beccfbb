"""Every ops command the README's ``sh`` blocks show parses as written (``[-f]`` read as ``-f``):
a flag the tool does not have, or a value out of its range, fails here. The ``console`` blocks
run for real (tests/docs/)."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from app.admin_cli import cache_check, hotpath, outbox
from devtools.bench import __main__ as bench
from devtools.containers import __main__ as compose
from devtools.drill import __main__ as drill
from devtools.load import __main__ as load
from devtools.stack import __main__ as dev

ROOT = Path(__file__).resolve().parents[2]
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "dev": dev.parser, "compose": compose.parser, "outbox": outbox.parser, "hotpath": hotpath.parser,
    "cache": cache_check.parser, "load": load.parser, "bench": bench.parser, "drill": drill.parser,
}  # fmt: skip


def _shown_commands() -> list[tuple[int, str]]:
    found, in_sh = [], False
    for number, line in enumerate((ROOT / "README.md").read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            in_sh = line.strip() == "```sh"
            continue
        if in_sh and line.startswith("ops/"):
            command = " ".join(shlex.split(line.split(";", 1)[0], comments=True))
            found.append((number, re.sub(r"\[([^]]*)\]", r"\1", command)))
    return found


COMMANDS = _shown_commands()


def test_the_readme_shows_ops_commands() -> None:
    assert {c.split()[0] for _, c in COMMANDS} >= {"ops/dev", "ops/outbox", "ops/load", "ops/compose", "ops/test"}


@pytest.mark.parametrize(("line", "command"), COMMANDS, ids=[f"line {n}" for n, _ in COMMANDS])
def test_the_command_parses(line: int, command: str) -> None:
    tool, *argv = shlex.split(command)
    name = tool.removeprefix("ops/")
    if name == "test":
        return  # its arguments are pytest's
    assert name in PARSERS, f"README line {line}: {tool} is not an ops command"
    parser = PARSERS[name]()
    try:
        if name == "bench":
            parser.parse_intermixed_args(argv)
        else:
            parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"README line {line}: `{command}` does not parse (exit {exc.code})")

"""Argument types shared by the ops commands: a number outside its range is a usage error
(exit 2, one line naming the flag and the range), never a run with a nonsense value."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {low:,} to {high:,}")
        return value

    return parse


def bounded_float(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{value:g} is out of range: use {low:g} to {high:g}")
        return value

    return parse


def unreachable(tool: str, what: str, exc: BaseException | None = None) -> int:
    """One line for a service the tool cannot reach, with what to run; the exit status 1."""
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    print(f"{tool}: cannot reach {what}{detail} (is the stack up? `ops/dev status`, `ops/dev up`)", file=sys.stderr)
    return 1


def global_flags() -> argparse.ArgumentParser:
    """The parent parser of flags a tool takes before or after its command word: ``--json`` here;
    each tool adds its own (a DSN, a run directory). Unset flags stay unset (SUPPRESS), so the
    subcommand's copy does not overwrite a value given before the command word."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return common


def tool_parser(prog: str, description: str | None, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """An ops tool's top-level parser: its docstring as written (synopsis, exit status), the flags."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common]
    )


def no_stack(tool: str, missing: str) -> int:
    """One line for a tool that was given nothing to look at (no flag, nothing exported, no
    .run/stack.env): the stack is not up as far as it can tell. Exit status 1, as for one that
    is down."""
    print(f"{tool}: no stack: {missing} (run `ops/dev up`, which writes .run/stack.env)", file=sys.stderr)
    return 1

"""``ops/drill``: every fault, one at a time, under the standard mixed load through nginx.

    ops/drill                          # all faults at scale 1 (about 3 minutes)
    ops/drill --only relay-kill,redis-pause --scale 0.5
    ops/drill --json                   # {"rows": [...], "ok": bool}
    ops/drill --run-dir /tmp/other     # the stack `ops/dev --run-dir /tmp/other up` started

Faults: primary and replica (stopped, then started), replica-lag (replay paused past the lag
bound), redis-restart (comes back empty), redis-pause (SIGSTOP), relay-kill (listener connections
terminated twice), instance-kill (app-1 SIGKILLed, then started), relay-mid-drain (a large outbox
backlog, app-1 SIGKILLed while draining it).

A row passes when every display read was served (except where the fault makes the only copy
unreachable; the share is shown anyway), no request got a 5xx other than an honest 503, no writer
missed its own write, nothing is stale afterwards, and the outbox drained. Exit status: 0 when every
row passes, 1 when one does not, 2 when the drill could not run (bad options, stack not up).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
from redis.exceptions import RedisError
from rich.console import Console

from devtools.drill.faults import FAULTS
from devtools.drill.report import render, to_json
from devtools.drill.runner import run_drill
from devtools.drill.target import StackDownError, Target
from devtools.stack import PROJECT_DIR, Stack, StackError


def _fault_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown fault(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(FAULTS)}"
        )
    return names


def _bounded(kind: type[float] | type[int], low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` within [low, high] (``low`` excluded for factors)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not (low < value <= high if kind is float else low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text!r}: {what}")
        return value

    return parse


_scale = _bounded(float, 0, 10, "use a factor above 0 and at most 10")
_workers = _bounded(int, 1, 256, "use 1 to 256 workers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ops/drill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, default=PROJECT_DIR / ".run", help="the stack's run directory")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--only", type=_fault_names, metavar="NAME,...", help=f"some of: {', '.join(FAULTS)}")
    parser.add_argument("--scale", type=_scale, default=1.0, help="multiplies every phase's duration")
    parser.add_argument("--workers", type=_workers, default=8, help="concurrent load workers (default 8)")
    args = parser.parse_args(argv)

    def err(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if not (args.run_dir / "stack.json").exists():
        err(f"ops/drill: no stack in {args.run_dir}: run ops/dev up first")
        return 2
    stack = Stack.load_or_create(args.run_dir)
    stack.host.quiet = True
    target = Target.of(stack)
    exported = os.environ.get("CATALOG_URL")
    if exported and exported != target.url:
        err(f"ops/drill: CATALOG_URL={exported} is not the stack in {args.run_dir} ({target.url})")
        return 2
    try:
        rows = run_drill(stack, args.only, scale=args.scale, workers=args.workers, progress=err)
    except StackDownError as exc:
        err(f"ops/drill: {exc}: run ops/dev up first")
        return 2
    except (StackError, OSError, RuntimeError, asyncpg.PostgresError, RedisError) as exc:
        err(f"ops/drill: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        err("ops/drill: interrupted")
        return 130
    if args.json:
        sys.stdout.write(to_json(rows).decode() + "\n")
    else:
        console = Console()
        if not console.is_terminal:
            console.width = 100
        render(rows, console)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

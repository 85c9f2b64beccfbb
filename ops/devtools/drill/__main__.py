"""ops/drill: every fault, one at a time, under the standard mixed load.

  ops/drill                          # all faults at scale 1 (about 3 minutes)
  ops/drill --only relay-kill,redis-pause --scale 0.5
  ops/drill --json                   # {"rows": [...], "ok": bool}
  ops/drill --run-dir /tmp/other     # the stack that
                                     # `ops/dev --run-dir /tmp/other up` started
  ops/drill --ha                     # the HA stack's faults (ops/dev up --ha)

Faults: primary and replica (stopped, then started), replica-lag (replay
paused past the lag bound), redis-restart (comes back empty), redis-pause
(SIGSTOP), relay-kill (listener connections terminated twice), instance-kill
(app-1 SIGKILLed, then started), relay-mid-drain (a large outbox backlog,
app-1 SIGKILLed while draining it).

HA faults (--ha): primary-kill (kill -9 of the primary's Postgres),
primary-freeze (its Patroni and Postgres SIGSTOPped), etcd-restart,
switchover (patronictl), member-loss (the primary's WAL senders stopped 1 s,
then the member killed).
Each HA row also counts every acknowledged write and looks each one up after
recovery: lost ones fail the row, except where asynchronous replication allows
them (they are counted and shown).

The load goes through nginx. A row passes when every display read was served
(except where the fault makes the only copy unreachable; the share is shown
anyway), no request got a 5xx other than an honest 503, no writer missed its
own write, nothing is stale afterwards, and the outbox drained.

Exit status: 0 every row passes; 1 a row fails, or the stack is not up (or
could not be put back together); 2 usage (bad options, or an exported
CATALOG_URL that is not the stack in --run-dir).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg
from redis.exceptions import RedisError
from rich.console import Console

from app.admin_cli.args import global_flags, tool_parser
from devtools.drill.faults import FAULTS
from devtools.drill.ha import HA_FAULTS, run_drill_ha
from devtools.drill.report import Row, render, render_ha, to_json
from devtools.drill.runner import run_drill
from devtools.drill.target import StackDownError, Target
from devtools.stack import PROJECT_DIR, Stack, StackError


def _fault_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULTS and n not in HA_FAULTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown fault(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(FAULTS)}"
            f" (with --ha: {', '.join(HA_FAULTS)})"
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


def parser() -> argparse.ArgumentParser:
    common = global_flags()
    common.add_argument(
        "--run-dir", type=Path, default=argparse.SUPPRESS, help="the stack's run directory (default: .run/)"
    )
    top = tool_parser("ops/drill", __doc__, common)
    top.add_argument("--only", type=_fault_names, metavar="NAME,...", help=f"some of: {', '.join(FAULTS)}")
    top.add_argument("--ha", action="store_true", help=f"the HA stack's faults: {', '.join(HA_FAULTS)}")
    top.add_argument("--scale", type=_scale, default=1.0, help="multiplies every phase's duration (0-10, default 1)")
    top.add_argument("--workers", type=_workers, default=8, help="concurrent load workers (1-256, default 8)")
    return top


_NOT_UP = "(`ops/dev status` says what runs; `ops/dev up` starts it)"


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    run_dir: Path = getattr(args, "run_dir", PROJECT_DIR / ".run")
    as_json: bool = getattr(args, "json", False)

    def err(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    table = HA_FAULTS if args.ha else FAULTS
    if wrong := [n for n in args.only or () if n not in table]:
        top.error(f"{', '.join(wrong)}: not {'an HA' if args.ha else 'a'} fault; choose from {', '.join(table)}")
    if not (run_dir / "stack.json").exists():
        err(f"ops/drill: no stack in {run_dir} {_NOT_UP}")
        return 1
    try:
        stack = Stack.load_or_create(run_dir)
        stack.host.quiet = True
        target = Target.of(stack)
        exported = os.environ.get("CATALOG_URL")
        if exported and exported != target.url:
            top.error(
                f"CATALOG_URL={exported} is not the stack in {run_dir} ({target.url}): unset it or pass --run-dir"
            )
        if args.ha != stack.config.ha:
            top.error(f"the stack in {run_dir} is {'an' if stack.config.ha else 'not an'} HA stack:"
                      f" {'add' if stack.config.ha else 'drop'} --ha")  # fmt: skip
        if args.ha:
            rows: Sequence[Row] = run_drill_ha(stack, args.only, progress=err)
        else:
            rows = run_drill(stack, args.only, scale=args.scale, workers=args.workers, progress=err)
    except StackDownError as exc:
        err(f"ops/drill: {exc} {_NOT_UP}")
        return 1
    except (StackError, OSError, RuntimeError, asyncpg.PostgresError, RedisError) as exc:
        err(f"ops/drill: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        err("ops/drill: interrupted")
        return 130
    _print(rows, as_json=as_json, ha=args.ha)
    return 0 if all(r.ok for r in rows) else 1


def _print(rows: Sequence[Row], *, as_json: bool, ha: bool) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=_pipe_width())
    if as_json:
        sys.stdout.write(to_json(rows).decode() + "\n")
    else:
        (render_ha if ha else render)(list(rows), console)


def _pipe_width() -> int:
    """$COLUMNS when set, else 100: the table is wider than 80 and a pipe has no width of its own."""
    try:
        return max(40, min(400, int(os.environ.get("COLUMNS", ""))))
    except ValueError:
        return 100


if __name__ == "__main__":
    raise SystemExit(main())

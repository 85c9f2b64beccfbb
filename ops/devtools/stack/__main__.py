"""``ops/dev``: the local stack. ``up [--replicas N] [--instances M] [--redis-cluster] | down | status |
stop SERVICE | start SERVICE | failover [--to REPLICA] | destroy``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from devtools.stack import PROJECT_DIR, Stack, StackError

_PORT_ENV = {
    "primary_port": "CATALOG_DEV_PRIMARY_PORT",
    "redis_port": "CATALOG_DEV_REDIS_PORT",
    "nginx_port": "CATALOG_DEV_NGINX_PORT",
}
# Each replica is a streaming connection plus, while it is being copied, two for pg_basebackup:
# the primary's max_wal_senders (10) bounds how many it can feed. Each instance holds up to ~22
# primary connections (two pools of 10, the monitor, the relay) of its max_connections (300).
MAX_REPLICAS = 8
MAX_INSTANCES = 8


def _overrides() -> dict[str, object]:
    values: dict[str, object] = {}
    for key, env in _PORT_ENV.items():
        if env in os.environ:
            values[key] = int(os.environ[env])
    if "CATALOG_DEV_PRODUCTS" in os.environ:
        values["products"] = int(os.environ["CATALOG_DEV_PRODUCTS"])
    return values


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{raw}: choose {low} to {high}")
        return value

    return parse


def _print_status(stack: Stack, as_json: bool) -> None:
    rows = stack.status()
    if as_json:
        print(msgspec.json.encode(rows).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("service", "state", "pid", "port")
    for row in rows:
        state = "[green]running[/]" if row["running"] else "[red]stopped[/]"
        table.add_row(str(row["service"]), state, str(row["pid"] or "-"), str(row["port"]))
    Console().print(table)


def _failover(stack: Stack, target: str | None, as_json: bool) -> None:
    from devtools.stack.failover import failover

    report = failover(stack, target)
    if as_json:
        print(msgspec.json.encode(report).decode())
        return
    c = stack.config
    print(f"{report.promoted}'s node is the primary now: port {c.primary_port}, timeline {report.timeline}")
    print(f"  promoted in {report.promote_s:.2f} s; running app instances follow without a restart")
    if report.rebuilt:
        print(f"  {report.rebuilt}: the old primary's port {c.port_of(report.rebuilt)}, rebuilt as a standby")
    for replica in report.followed:
        print(f"  {replica}: follows the new primary")
    for replica in report.left_behind:
        print(f"  {replica}: stopped, left behind (it still points at the old primary; rebuild it)")
    print("  commits the old primary had not shipped are lost, with their outbox events (docs/faults.md)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ops/dev", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=PROJECT_DIR / ".run")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring the whole stack up (idempotent)")
    up.add_argument(
        "--replicas",
        type=_count(1, MAX_REPLICAS),
        metavar="N",
        help="streaming replicas replica-1..N (default 1; an existing stack keeps its number)",
    )
    up.add_argument(
        "--instances",
        type=_count(1, MAX_INSTANCES),
        metavar="M",
        help="app instances app-1..M behind nginx (default 2; an existing stack keeps its number)",
    )
    up.add_argument(
        "--redis-cluster",
        action="store_true",
        default=None,
        help="a Redis Cluster redis-1..6 (3 masters, a replica each) on CATALOG_DEV_REDIS_PORT and the "
        "5 ports after it, instead of one Redis",
    )
    sub.add_parser("down", help="stop everything the stack started (data is kept)")
    sub.add_parser("destroy", help="stop everything and delete the stack's data")
    status = sub.add_parser("status", help="which services run")
    status.add_argument("--json", action="store_true")
    fo = sub.add_parser("failover", help="stop the primary as a crash would and promote a replica")
    fo.add_argument("--to", metavar="REPLICA", help="the replica to promote (default: the one holding the most WAL)")
    fo.add_argument("--json", action="store_true")
    for name in ("stop", "start"):
        p = sub.add_parser(name, help=f"{name} one service (fault drills)")
        p.add_argument("service")
    args = parser.parse_args(argv)

    try:
        stack = Stack.load_or_create(
            args.run_dir,
            replicas=getattr(args, "replicas", None),
            instances=getattr(args, "instances", None),
            redis_cluster=getattr(args, "redis_cluster", None),
            env=os.environ,
            **_overrides(),
        )
        if args.command == "up":
            stack.up()
            env_file = args.run_dir / "stack.env"
            print()
            c = stack.config
            print(f"catalog is up: {c.url}  (instances: {', '.join(c.app_urls)})")
            print(f"  replicas:   {', '.join(f'{r} :{c.port_of(r)}' for r in c.replicas)}")
            if c.redis_cluster:
                print(f"  redis:      cluster {', '.join(f'{r} :{c.port_of(r)}' for r in c.redis_nodes)}")
            print(f"  stack env:  {env_file}   (source it: set -a; . {env_file}; set +a)")
            print(f"  logs:       {args.run_dir / 'logs'}/")
            print(f"  try:        curl {stack.config.url}/products/1")
        elif args.command == "down":
            stack.down()
            print("stack stopped")
        elif args.command == "destroy":
            stack.destroy()
            print("stack stopped and its data deleted")
        elif args.command == "status":
            _print_status(stack, args.json)
        elif args.command == "failover":
            _failover(stack, args.to, args.json)
        elif args.command == "stop":
            stack.stop(args.service)
            print(f"{args.service}: stopped")
        elif args.command == "start":
            stack.start(args.service)
            print(f"{args.service}: running")
    except StackError as exc:
        print(f"ops/dev: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

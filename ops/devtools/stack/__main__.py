"""``ops/dev``: the local stack. ``up | down | status | stop SERVICE | start SERVICE | destroy``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import msgspec

from devtools.stack import PROJECT_DIR, Stack, StackError

_PORT_ENV = {
    "primary_port": "CATALOG_DEV_PRIMARY_PORT",
    "replica_port": "CATALOG_DEV_REPLICA_PORT",
    "redis_port": "CATALOG_DEV_REDIS_PORT",
    "nginx_port": "CATALOG_DEV_NGINX_PORT",
}


def _overrides() -> dict[str, object]:
    values: dict[str, object] = {}
    for key, env in _PORT_ENV.items():
        if env in os.environ:
            values[key] = int(os.environ[env])
    app_ports = [os.environ.get(f"CATALOG_DEV_APP_{i}_PORT") for i in (1, 2)]
    if any(app_ports):
        values["app_ports"] = [int(p or 8000 + i) for i, p in enumerate(app_ports, start=1)]
    if "CATALOG_DEV_PRODUCTS" in os.environ:
        values["products"] = int(os.environ["CATALOG_DEV_PRODUCTS"])
    return values


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ops/dev", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=PROJECT_DIR / ".run")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="bring the whole stack up (idempotent)")
    sub.add_parser("down", help="stop everything the stack started (data is kept)")
    sub.add_parser("destroy", help="stop everything and delete the stack's data")
    status = sub.add_parser("status", help="which services run")
    status.add_argument("--json", action="store_true")
    for name in ("stop", "start"):
        p = sub.add_parser(name, help=f"{name} one service (fault drills)")
        p.add_argument("service")
    args = parser.parse_args(argv)

    stack = Stack.load_or_create(args.run_dir, **_overrides())
    try:
        if args.command == "up":
            stack.up()
            env_file = args.run_dir / "stack.env"
            print()
            print(f"catalog is up: {stack.config.url}  (instances: {', '.join(stack.config.app_urls)})")
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

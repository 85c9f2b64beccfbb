"""ops/dev: the local stack (Postgres primary + streaming replicas, Redis, app
instances, nginx) from this machine's binaries, under the run directory (.run/).

  ops/dev up [--replicas N] [--instances M] [--redis-cluster]
  ops/dev up --ha [--synchronous]   (etcd, Patroni, HAProxy)
  ops/dev status | down | destroy | failover [--to REPLICA]
  ops/dev switchover [--to MEMBER]  (HA: a planned switchover)
  ops/dev stop SERVICE | start SERVICE

Ports: CATALOG_DEV_{PRIMARY,REPLICA,REDIS,NGINX,APP_1,APP_2}_PORT, replica i:
CATALOG_DEV_REPLICA_<i>_PORT. A variable that is set wins over the stack's
saved ports: a stopped stack moves to them, a running one is refused.
Flags may come before or after the command.

Exit status: 0 ok; 1 something is down or failed (status: not every service
runs); 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import msgspec

from app.admin_cli.args import bounded_int, global_flags, tool_parser
from devtools.stack import PROJECT_DIR, Stack, StackError
from devtools.stack.ports import UsageError, env_port

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
SERVICES_HELP = (
    "primary, replica-1..N (replica = replica-1), redis (redis-1..6 on a cluster), app-1..M, nginx; "
    "with --ha: etcd, pg-1..3, haproxy"
)


def _overrides() -> dict[str, object]:
    """Settings of a new stack from the environment (a saved stack's ports: ports.py)."""
    values: dict[str, object] = {}
    for key, variable in _PORT_ENV.items():
        port = env_port(os.environ, variable)
        if port is not None:
            values[key] = port
    raw = os.environ.get("CATALOG_DEV_PRODUCTS")
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 10_000_000:
            raise UsageError(f"CATALOG_DEV_PRODUCTS={raw!r}: use a whole number from 1 to 10,000,000")
        values["products"] = int(raw)
    return values


def _state(row: dict[str, object]) -> str:
    if row["running"]:
        return "running"
    return "port taken" if row["listening"] else "stopped"


def _print_status(stack: Stack, as_json: bool) -> int:
    """One row per service; exit status 1 unless every service runs."""
    rows = stack.status()
    for row in rows:
        row["state"] = _state(row)
    everything = all(row["running"] for row in rows)
    if as_json:
        print(msgspec.json.encode({"running": everything, "services": rows}).decode())
        return 0 if everything else 1
    print(f"{'SERVICE':<12} {'STATE':<11} {'PID':>8}  PORT")
    for row in rows:
        print(f"{row['service']!s:<12} {row['state']!s:<11} {row['pid'] or '-'!s:>8}  {row['port']}")
    taken = [str(row["service"]) for row in rows if row["state"] == "port taken"]
    if taken:
        print(f"port taken: another program listens on the port of {', '.join(taken)} (`ss -ltnp` names it)")
    if not everything:
        down = "nothing runs" if not any(row["running"] for row in rows) else "not everything runs"
        print(f"{down}: `ops/dev up` starts what is stopped")
    return 0 if everything else 1


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


def _switchover(stack: Stack, target: str | None, as_json: bool) -> None:
    from devtools.stack.ha import switchover

    if not stack.config.ha:
        raise UsageError("switchover is for the HA stack (`ops/dev up --ha`); this one has `ops/dev failover`")
    report = switchover(stack.ha, target)
    if as_json:
        print(msgspec.json.encode(report).decode())
        return
    print(f"{report['leader']} is the primary now (was {report['was']}), in {report['seconds']:.2f} s")


def parser() -> argparse.ArgumentParser:
    common = global_flags()
    common.add_argument(
        "--run-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="where the stack's config, env file and links to its data and logs live "
        "(default: $CATALOG_DEV_RUN_DIR, else .run/)",
    )
    top = tool_parser("ops/dev", __doc__, common)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", parents=[common], help="bring the whole stack up (idempotent), print where it is")
    up.add_argument(
        "--replicas",
        type=bounded_int(1, MAX_REPLICAS),
        metavar="N",
        help=f"streaming replicas replica-1..N, 1-{MAX_REPLICAS} (default 1; an existing stack keeps its number)",
    )
    up.add_argument(
        "--instances",
        type=bounded_int(1, MAX_INSTANCES),
        metavar="M",
        help=f"app instances app-1..M behind nginx, 1-{MAX_INSTANCES} (default 2; an existing stack keeps its number)",
    )
    up.add_argument(
        "--redis-cluster",
        action="store_true",
        default=None,
        help="a Redis Cluster redis-1..6 (3 masters, a replica each) on CATALOG_DEV_REDIS_PORT and the "
        "5 ports after it, instead of one Redis",
    )
    up.add_argument(
        "--ha",
        action="store_true",
        default=None,
        help="the HA topology: etcd, Postgres members pg-1..3 managed by Patroni, HAProxy on the primary's "
        "port (docs/adr/0018); instead of the primary and its replicas",
    )
    up.add_argument(
        "--synchronous",
        action="store_true",
        default=None,
        help="with --ha: Patroni's synchronous mode (a COMMIT waits for a replica: no acknowledged write "
        "is lost in a failover)",
    )
    sub.add_parser("down", parents=[common], help="stop everything the stack started (data is kept)")
    sub.add_parser("destroy", parents=[common], help="stop everything, delete the stack's data and its config")
    sub.add_parser("status", parents=[common], help="which services run; exit 1 unless all do")
    fo = sub.add_parser("failover", parents=[common], help="stop the primary as a crash would and promote a replica")
    fo.add_argument("--to", metavar="REPLICA", help="the replica to promote (default: the one holding the most WAL)")
    so = sub.add_parser("switchover", parents=[common], help="with --ha: a planned switchover, by Patroni")
    so.add_argument("--to", metavar="MEMBER", help="the member to promote (default: Patroni's choice)")
    for name in ("stop", "start"):
        p = sub.add_parser(name, parents=[common], help=f"{name} one service (fault drills)")
        p.add_argument("service", metavar="SERVICE", help=f"one of: {SERVICES_HELP}")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run_dir = Path(getattr(args, "run_dir", None) or os.environ.get("CATALOG_DEV_RUN_DIR") or PROJECT_DIR / ".run")
    as_json: bool = getattr(args, "json", False)
    try:
        stack = Stack.load_or_create(
            run_dir,
            replicas=getattr(args, "replicas", None),
            instances=getattr(args, "instances", None),
            redis_cluster=getattr(args, "redis_cluster", None),
            ha=getattr(args, "ha", None),
            synchronous_mode=getattr(args, "synchronous", None),
            env=os.environ,
            **_overrides(),
        )
        return _command(stack, args, run_dir, as_json)
    except UsageError as exc:
        print(f"ops/dev: {exc}", file=sys.stderr)
        return 2
    except StackError as exc:
        print(f"ops/dev: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ops/dev: interrupted", file=sys.stderr)
        return 130


def _command(stack: Stack, args: argparse.Namespace, run_dir: Path, as_json: bool) -> int:
    if args.command != "up":
        for move in stack.pending_moves:  # only `up` moves a stack; say so rather than ignore it
            print(f"ops/dev: {move.variable} asks for {move.new}; {move.service} stays on {move.old} "
                  "until `ops/dev up` moves it", file=sys.stderr)  # fmt: skip
    if args.command == "up":
        stack.move_ports(stack.pending_moves)
        for move in stack.moved:
            print(f"ports from the environment: {move}")
        stack.up()
        _print_up(stack, run_dir, as_json)
    elif args.command == "down":
        stack.down()
        print("stack stopped")
    elif args.command == "destroy":
        stack.destroy()
        print("stack stopped; its data and config deleted")
    elif args.command == "status":
        return _print_status(stack, as_json)
    elif args.command == "failover":
        if stack.config.ha:
            raise UsageError("in the HA stack Patroni decides failover; `ops/dev switchover` asks it for a planned one")
        _failover(stack, args.to, as_json)
    elif args.command == "switchover":
        _switchover(stack, args.to, as_json)
    elif args.command in ("stop", "start"):
        getattr(stack, args.command)(args.service)
        print(f"{args.service}: {'stopped' if args.command == 'stop' else 'running'}")
    return 0


def _print_up(stack: Stack, run_dir: Path, as_json: bool) -> None:
    c = stack.config
    env_file = run_dir / "stack.env"
    if as_json:
        services = {s: c.port_of(s) for s in c.services}
        print(msgspec.json.encode({"url": c.url, "stack_env": str(env_file), "ports": services}).decode())
        return
    print()
    print(f"catalog is up: {c.url}  (instances: {', '.join(c.app_urls)})")
    if c.ha:
        sync = ", synchronous mode" if c.synchronous_mode else ""
        print(f"  primary:    HAProxy :{c.primary_port} -> the member Patroni elects{sync}")
        print(f"  members:    {', '.join(f'{m} :{c.port_of(m)} (api :{c.api_port_of(m)})' for m in c.members)}")
        print(f"  etcd:       :{c.etcd_port}   (patronictl -c {stack.ha.config_path(c.members[0])} list)")
    else:
        print(f"  replicas:   {', '.join(f'{r} :{c.port_of(r)}' for r in c.replicas)}")
    if c.redis_cluster:
        print(f"  redis:      cluster {', '.join(f'{r} :{c.port_of(r)}' for r in c.redis_nodes)}")
    print(f"  stack env:  {env_file}   (source it: set -a; . {env_file}; set +a)")
    print(f"  logs:       {run_dir / 'logs'}/")
    print(f"  try:        curl {c.url}/products/1")


if __name__ == "__main__":
    raise SystemExit(main())

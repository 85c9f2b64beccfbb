"""``ops/compose``: the stack in containers.

    ops/compose up [--instances N] [--ha] [--redis-cluster] [--ca-file FILE]
    ops/compose status [--json] | logs [SERVICE] [--tail N] | smoke [--json]
    ops/compose down [--volumes] | images [--rebuild]

Exit status: 0 ok, 1 the stack (or the engine) is not healthy, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.admin_cli.args import global_flags, tool_parser
from devtools.containers.engine import Engine, EngineError, find_engine
from devtools.containers.images import BASE_IMAGES, build_base_image, built_from_current_recipe
from devtools.containers.project import PROJECT_LABEL, RUN_DIR, Project, describe, dumps
from devtools.containers.smoke import require, run_smoke

TOOL = "ops/compose"


def say(line: str) -> None:
    print(line, flush=True)


def parser() -> argparse.ArgumentParser:
    common = global_flags()
    common.add_argument("--project", default=argparse.SUPPRESS, help="compose project name (default: catalog)")
    top = tool_parser(TOOL, __doc__, common)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", parents=[common], help="build, start, wait until healthy, smoke-check, print the URL")
    up.add_argument(
        "--instances", type=int, choices=range(1, 9), default=2, metavar="N", help="app containers (1-8, default 2)"
    )
    up.add_argument(
        "--redis-cluster", action="store_true", help="a Redis Cluster (compose.cluster.yaml) instead of one Redis"
    )
    up.add_argument("--ha", action="store_true", help="failover decided by Patroni: etcd x3, pg-1..3, HAProxy "
                    "(compose.ha.yaml) instead of one primary and its replicas")  # fmt: skip
    up.add_argument(
        "--http-port", type=int, choices=range(1, 65536), metavar="PORT", help="nginx on this host port (default 8080)"
    )
    up.add_argument("--ca-file", type=Path, help="a CA for pip inside the build (TLS-intercepting proxy); "
                    "default: $CATALOG_BUILD_CA_FILE, else $PIP_CERT")  # fmt: skip
    up.add_argument("--no-build", action="store_true", help="use the catalog:latest image as it is")
    up.add_argument("--no-smoke", action="store_true", help="skip the smoke check")
    up.add_argument(
        "--timeout",
        type=int,
        choices=range(10, 3601),
        default=600,
        metavar="S",
        help="seconds to wait for health (default 600)",
    )
    down = sub.add_parser("down", parents=[common], help="stop and remove the containers and network")
    down.add_argument("--volumes", action="store_true", help="also delete the data volumes and the generated secrets")
    sub.add_parser("status", parents=[common], help="each container's state and health; exit 1 unless all are ready")
    sub.add_parser("smoke", parents=[common], help="run the smoke check against the running stack")
    logs = sub.add_parser("logs", parents=[common], help="the services' logs (compose logs)")
    logs.add_argument("service", nargs="?")
    logs.add_argument(
        "--tail", type=int, choices=range(1, 100001), default=100, metavar="N", help="lines per container (default 100)"
    )
    images = sub.add_parser(
        "images", parents=[common], help="build the base images from Debian packages (no registry needed)"
    )
    images.add_argument("--rebuild", action="store_true", help="build them again even if present")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    engine = None
    try:
        # Only the commands that make things install an engine; the others use what is there.
        # A podman service this run starts is its own to stop, except after `up`: the stack's
        # next commands find it (it exits by itself when idle, engine.PODMAN_IDLE_S).
        engine = find_engine(
            RUN_DIR / "podman-service.log", install=args.command in ("up", "images"), own_service=args.command != "up"
        )
        project = Project(
            engine,
            name=getattr(args, "project", None) or os.environ.get("CATALOG_COMPOSE_PROJECT", "catalog"),
            redis_cluster=getattr(args, "redis_cluster", False),
            ha=getattr(args, "ha", False),
            instances=getattr(args, "instances", 2),
        )
        if args.command != "up":
            project.follow_saved_topology()
        if getattr(args, "http_port", None):
            project.overrides["CATALOG_HTTP_PORT"] = str(args.http_port)
        return COMMANDS[args.command](project, args, as_json)
    except EngineError as exc:
        print(f"{TOOL}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{TOOL}: interrupted", file=sys.stderr)
        return 130
    finally:
        if engine is not None:
            engine.stop_service()


def _ca_file(args: argparse.Namespace) -> Path | None:
    chosen = args.ca_file or os.environ.get("CATALOG_BUILD_CA_FILE") or os.environ.get("PIP_CERT")
    if not chosen:
        return None
    # The launcher runs from the checkout: a relative path is the caller's, from where they were.
    return Path(os.environ.get("CATALOG_CALLER_CWD", "."), chosen)


def cmd_up(project: Project, args: argparse.Namespace, as_json: bool) -> int:
    say(f"engine: {project.engine.kind} ({' '.join(project.engine.compose)})")
    was = project.saved_topology()
    wanted = "ha" if project.ha else "single"
    if was and was != wanted and project.containers():
        raise EngineError(f"project {project.name} runs the {'HA' if was == 'ha' else 'single-primary'} topology: "
                          "`ops/compose down` it first, or name another with --project")  # fmt: skip
    values = project.settings(say, resolve_images=True)
    project.save(values)
    if not args.no_build:
        say("building catalog:latest")
        say(f"built catalog:latest in {project.build(values, _ca_file(args)):.0f} s")
        if project.ha:
            say("building catalog-patroni:latest (Patroni on the Postgres image)")
            say(f"built catalog-patroni:latest in {project.build(values, _ca_file(args), 'patroni'):.0f} s")
    say("starting the stack")
    with project.healthchecks_driven():
        project.compose(
            "up", "-d", "--no-build", "--scale", f"app={args.instances}", values=values, timeout=args.timeout
        )
        containers = project.wait_ready(args.timeout, say)
    url = f"http://127.0.0.1:{values['CATALOG_HTTP_PORT']}"
    say(f"all {len(containers)} containers healthy")
    if not args.no_smoke:
        say("smoke check:")
        require(run_smoke(project, url, values["CATALOG_ADMIN_TOKEN"], say))
    say("")
    say(f"catalog is up in containers: {url}  (project {project.name}, {len(containers)} containers)")
    say(f"  prometheus: http://127.0.0.1:{values['CATALOG_PROMETHEUS_PORT']}")
    say(f"  settings:   {project.env_file}   (secrets; `--env-file` it to run compose by hand)")
    say(f"  try:        curl {url}/products/1")
    return 0


def cmd_down(project: Project, args: argparse.Namespace, as_json: bool) -> int:
    values = project.settings()
    flags = ["--remove-orphans", "--timeout", "15"] + (["--volumes"] if args.volumes else [])
    project.compose("down", *flags, values=values)
    if args.volumes:
        # compose removes the volumes of the files it was given; the other topology's are the project's too.
        labelled = project.engine.run("volume", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project.name}")
        if labelled.stdout.split():
            project.engine.run("volume", "rm", "--force", *labelled.stdout.split())
    # A cluster override's containers belong to the same project: one down removes them too.
    if args.volumes and project.env_file.exists():
        project.env_file.unlink()
    left = project.containers()
    if left:
        print(f"{TOOL}: still present: {', '.join(c.name for c in left)}", file=sys.stderr)
        return 1
    say(
        f"project {project.name}: containers and network removed"
        + (", volumes and secrets deleted" if args.volumes else " (volumes kept)")
    )
    return 0


def cmd_status(project: Project, args: argparse.Namespace, as_json: bool) -> int:
    containers = project.containers()
    if project.engine.drives_health:
        project.run_healthchecks(containers, {})
        containers = project.containers()
    ready = bool(containers) and all(c.ready for c in containers)
    if as_json:
        say(
            dumps(
                {
                    "project": project.name,
                    "engine": project.engine.kind,
                    "ready": ready,
                    "containers": describe(containers),
                }
            )
        )
    elif not containers:
        say(f"project {project.name}: no containers (start it with `ops/compose up`)")
    else:
        say(f"{'SERVICE':<20} {'STATE':<10} {'HEALTH':<10} CONTAINER")
        for c in containers:
            say(f"{c.service:<20} {c.state:<10} {c.health or '-':<10} {c.name}")
    return 0 if ready else 1


def cmd_smoke(project: Project, args: argparse.Namespace, as_json: bool) -> int:
    values = project.settings()
    url = f"http://127.0.0.1:{values['CATALOG_HTTP_PORT']}"
    smoke = run_smoke(project, url, values["CATALOG_ADMIN_TOKEN"], (lambda _: None) if as_json else say)
    if as_json:
        say(dumps({"ok": smoke.ok, "steps": [{"step": n, "ok": ok, "detail": d} for n, ok, d in smoke.steps]}))
    return 0 if smoke.ok else 1


def cmd_logs(project: Project, args: argparse.Namespace, as_json: bool) -> int:
    result = project.compose(
        "logs",
        "--no-color",
        "--tail",
        str(args.tail),
        *([args.service] if args.service else []),
        values=project.settings(),
    )
    sys.stdout.write(result.stdout)
    return 0


def cmd_images(project: Project, args: argparse.Namespace, as_json: bool) -> int:
    engine: Engine = project.engine
    for image in BASE_IMAGES:
        if built_from_current_recipe(engine, image) and not args.rebuild:
            say(f"{image.name}: present, built from the current recipe")
            continue
        say(f"{image.name}: built in {build_base_image(engine, image, say):.0f} s")
    return 0


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "smoke": cmd_smoke,
    "logs": cmd_logs,
    "images": cmd_images,
}

if __name__ == "__main__":
    raise SystemExit(main())

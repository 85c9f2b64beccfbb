"""Ports the environment asks for, against the ports a stack was made with.

Precedence is the one every tool has: a variable that is set (``CATALOG_DEV_PRIMARY_PORT``...)
wins over ``.run/stack.json``, which wins over the defaults. A stack whose services are all
stopped moves to the ports asked for (replicas are repointed at a moved primary); a running stack
is never moved under its users: ``up`` refuses and says how to move it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from devtools.stack.config import StackConfig, StackError, port_variable


class UsageError(StackError):
    """A setting the user gave that cannot be used as it is (exit status 2)."""


@dataclass(frozen=True)
class Move:
    service: str
    variable: str
    old: int
    new: int

    def __str__(self) -> str:
        return f"{self.service} {self.old} -> {self.new} ({self.variable})"


def parse_port(variable: str, raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise UsageError(f"{variable}={raw!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"{variable}={raw!r} is out of range: a port is 1-65535")
    return port


def env_port(env: Mapping[str, str], variable: str) -> int | None:
    raw = env.get(variable)
    return parse_port(variable, raw) if raw else None


def check_port_variables(env: Mapping[str, str]) -> None:
    """Every ``CATALOG_DEV_*_PORT`` that is set must be a port, whatever the command."""
    for variable, raw in env.items():
        if variable.startswith("CATALOG_DEV_") and variable.endswith("_PORT") and raw:
            parse_port(variable, raw)


def wanted_moves(config: StackConfig, env: Mapping[str, str]) -> list[Move]:
    """The services whose variable is set to a port other than the stack's."""
    moves = []
    seen_redis = False
    for service in config.services:
        if service.startswith("redis-"):
            if seen_redis:
                continue  # one variable moves the whole cluster: the first node's port
            seen_redis = True
        variable = port_variable(service)
        new = env_port(env, variable)
        old = config.port_of(service)
        if new is not None and new != old:
            moves.append(Move(service, variable, old, new))
    return moves


def moved(config: StackConfig, moves: list[Move]) -> StackConfig:
    replicas = list(config.replica_ports)
    apps = list(config.app_ports)
    fields: dict[str, object] = {}
    for move in moves:
        if move.service == "primary":
            fields["primary_port"] = move.new
        elif move.service == "nginx":
            fields["nginx_port"] = move.new
        elif move.service.startswith("redis"):
            fields["redis_port"] = move.new
        elif move.service.startswith("replica-"):
            replicas[int(move.service.removeprefix("replica-")) - 1] = move.new
        elif move.service.startswith("app-"):
            apps[int(move.service.removeprefix("app-")) - 1] = move.new
    return msgspec.structs.replace(config, replica_ports=replicas, app_ports=apps, **fields)


def refuse_moving_running(moves: list[Move], running: list[str]) -> None:
    asked = ", ".join(str(m) for m in moves)
    raise UsageError(
        f"the stack is running ({', '.join(running)}) and the environment asks to move it: {asked}. "
        "`ops/dev down` then `ops/dev up` moves it; or unset the variables to keep it where it is"
    )


def refuse_moving_cluster(moves: list[Move]) -> None:
    for move in moves:
        if move.service.startswith("redis"):
            raise UsageError(
                f"a Redis Cluster keeps its nodes' ports in its own state: {move} cannot move it; "
                "unset the variable, or `ops/dev destroy` and `up` to make the stack anew there"
            )

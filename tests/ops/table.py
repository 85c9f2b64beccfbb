"""Every ops command, as a row: what it runs read-only, a bad value, whether it has a command
word that global flags may stand before or after. ``tests/ops/`` runs each row through its real
launcher, piped, at 80 columns: with no stack (here) and against a stack (the system tier)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 80
NOTHING = "127.0.0.1:9"  # the discard port: nothing listens there


@dataclass(frozen=True)
class Row:
    tool: str
    command: tuple[str, ...]  # the read-only run this row checks
    bad: tuple[str, ...]  # a bad value: a usage error before anything runs
    has_command_word: bool  # global flags may come before or after it

    @property
    def launcher(self) -> str:
        return str(ROOT / "ops" / self.tool)

    def __str__(self) -> str:
        return f"ops/{self.tool}"


ROWS = (
    Row("dev", ("status",), ("up", "--replicas", "0"), True),
    Row("compose", ("status",), ("up", "--instances", "0"), True),
    Row("outbox", ("status",), ("purge", "--older-than", "1h", "--batch-size", "0"), True),
    Row("hotpath", (), ("--window", "-5"), False),
    Row("cache", ("check",), ("chek",), True),
    Row("load", ("-t", "3s", "-u", "2"), ("-u", "0"), False),
    Row("bench", ("seed", "--products", "2000", "--searches", "10"), ("seed", "--runs", "0"), True),
    Row("drill", ("--only", "relay-kill", "--scale", "0.2"), ("--workers", "0"), False),
)


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines() + self.err.splitlines()

    def problems(self, tool: str) -> list[str]:
        """What an operator would hold against this output, whatever the exit status."""
        found = []
        if "Traceback" in self.out + self.err:
            found.append("a traceback")
        # What is printed for people fits 80 columns; JSON is for machines, and an error is one
        # line on stderr (as long as it takes, within reason: a terminal wraps it once or twice).
        shown = [] if self.is_json else self.out.splitlines()
        wide = [line for line in shown if len(line) > WIDTH]
        if wide:
            found.append(f"{len(wide)} lines over {WIDTH} columns, e.g. {wide[0]!r}")
        long_errors = [line for line in self.err.splitlines() if len(line) > 3 * WIDTH]
        if long_errors:
            found.append(f"an error line of {len(long_errors[0])} characters")
        errors = [line for line in self.err.splitlines() if line.strip() and not line.startswith("  ")]
        if self.code != 0 and errors and not errors[-1].startswith(f"ops/{tool}"):
            found.append(f"the last error line does not name the tool: {errors[-1]!r}")
        return found

    @property
    def is_json(self) -> bool:
        try:
            json.loads(self.out)
        except json.JSONDecodeError:
            return False
        return bool(self.out.strip())

    def json_or_empty(self) -> bool:
        if not self.out.strip():
            return True
        try:
            json.loads(self.out)
        except json.JSONDecodeError:
            return False
        return True


def run(row: Row, args: tuple[str, ...], env: dict[str, str], timeout: float = 300) -> Ran:
    result = subprocess.run(
        [row.launcher, *args], capture_output=True, text=True, env={**env, "COLUMNS": str(WIDTH)},
        cwd=ROOT, timeout=timeout, check=False,
    )  # fmt: skip
    # pip's notes about its find-links, if the venv is being set up, are not the tool's output.
    err = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("WARNING: Location"))
    return Ran(result.returncode, result.stdout, err)


def no_stack_env(run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_")}
    env.update(
        {
            "CATALOG_URL": f"http://{NOTHING}",
            "CATALOG_APP_URLS": f"http://{NOTHING}",
            "CATALOG_PRIMARY_DSN": f"postgresql://postgres@{NOTHING}/catalog",
            "CATALOG_REPLICA_DSNS": f"postgresql://postgres@{NOTHING}/catalog",
            "CATALOG_REDIS_URL": f"redis://{NOTHING}/0",
            "CATALOG_ADMIN_TOKEN": "nobody",
            "CATALOG_DEV_RUN_DIR": str(run_dir),
            "CATALOG_COMPOSE_PROJECT": f"nostack{os.getpid()}",
        }
    )
    return env


def with_json(row: Row, before: bool) -> tuple[str, ...]:
    if before:
        return ("--json", *row.command)
    return (*row.command, "--json")


def never_set_up_env(run_dir: Path) -> dict[str, str]:
    """As on a fresh checkout where ``ops/dev up`` never ran: every setting empty (set, so the
    launchers do not fill it from a .run/stack.env this machine may have)."""
    env = no_stack_env(run_dir)
    for key in ("CATALOG_URL", "CATALOG_APP_URLS", "CATALOG_PRIMARY_DSN", "CATALOG_REPLICA_DSNS", "CATALOG_REDIS_URL"):
        env[key] = ""
    return env

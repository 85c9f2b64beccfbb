"""The machine the stack runs on: system binaries, commands (as ``postgres`` when we are root),
and processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devtools.stack.config import StackError


def pg_bindir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` directory (Debian keeps them off PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise StackError("PostgreSQL server binaries not found: install them with `apt-get install postgresql`")


def check_binaries() -> None:
    """Fail with the exact package to install when a system binary is missing."""
    pg_bindir()
    missing = [
        pkg
        for binary, pkg in (("redis-server", "redis-server"), ("nginx", "nginx"))
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists()
    ]
    if missing:
        raise StackError(f"missing system packages: install them with `apt-get install {' '.join(missing)}`")


def which(binary: str) -> str:
    # /usr/sbin is not on a normal user's PATH, but that is where Debian puts nginx.
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found is None:
        raise StackError(f"{binary} not found")
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else (postgres when we are not root)
        return True
    return True


def read_pid(path: Path) -> int | None:
    """The live process named by a pid file's first word, or None (no file, garbage, or gone)."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def terminate(pid: int, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Send ``sig``, wait up to ``timeout`` for the process to go, then kill it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        # Reap it if it is our child, or it would stay a zombie and look alive forever.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0, log: Path | None = None) -> None:
    """Poll ``predicate`` until it holds; else fail, quoting the last line of ``log`` if there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise StackError(f"timed out waiting for {what}{last_log_line(log)}")


def last_log_line(log: Path | None) -> str:
    """``: <the log's last line> (see <log>)``, or nothing when there is no log to quote."""
    if log is None:
        return ""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 8192))
            lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:300]} (see {log})" if lines else f" (see {log})"


@dataclass
class Host:
    """How the launcher runs commands and talks to the user.

    Postgres refuses to run as root, so when we are root every Postgres command (and every read or
    write inside its private data directories) goes through ``runuser -u postgres``.
    """

    quiet: bool = False
    is_root: bool = field(default_factory=lambda: os.geteuid() == 0)

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def as_postgres(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if self.is_root else cmd

    def run(self, cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise StackError(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr.strip()}")
        return result

    def write_as_postgres(self, path: Path, text: str, *, append: bool = False) -> None:
        cmd = ["tee", "-a", str(path)] if append else ["tee", str(path)]
        subprocess.run(self.as_postgres(cmd), input=text, text=True, capture_output=True, check=True)

    def read_as_postgres(self, path: Path) -> str:
        return subprocess.run(self.as_postgres(["cat", str(path)]), capture_output=True, text=True, check=True).stdout

    def is_file_as_postgres(self, path: Path) -> bool:
        return subprocess.run(self.as_postgres(["test", "-f", str(path)]), check=False).returncode == 0

"""Where a stack keeps its files.

Data, logs, pid files and sockets live under ``base_dir``, which must be traversable by every
user: when we are root Postgres runs as ``postgres``, which must traverse every parent of its
data directory. ``run_dir`` (``.run/`` in a checkout) holds the config and links to the logs
and data.
"""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

from devtools.stack.config import StackError
from devtools.stack.system import read_pid, terminate


def is_postgres(service: str) -> bool:
    return service == "primary" or service.startswith("replica-")


@dataclass(frozen=True)
class Layout:
    run_dir: Path
    base_dir: Path
    # Overrides of data_dir's naming, from StackConfig.data_dirs (a failover swaps two).
    data_dirs: dict[str, str] = field(default_factory=dict)

    @property
    def logs_dir(self) -> Path:
        return self.base_dir / "logs"

    def data_dir(self, service: str) -> Path:
        # The first replica keeps the directory it had when a stack had only one, so a stack made
        # before `--replicas` existed is still found (and stopped) by this launcher.
        if service in self.data_dirs:
            return self.base_dir / self.data_dirs[service]
        return self.base_dir / ("replica" if service == "replica-1" else service)

    def pidfile(self, service: str) -> Path:
        return self.base_dir / "pids" / f"{service}.pid"

    def pid(self, service: str) -> int | None:
        """The running process of ``service``, if any."""
        if is_postgres(service):
            # Postgres keeps its own pid file, inside the data directory.
            return read_pid(self.data_dir(service) / "postmaster.pid")
        return read_pid(self.pidfile(service))

    def running(self, service: str) -> bool:
        return self.pid(service) is not None

    def stop(self, service: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the process named by ``service``'s pid file and forget the file."""
        pid = self.pid(service)
        if pid is not None:
            terminate(pid, sig, timeout)
        self.pidfile(service).unlink(missing_ok=True)

    def prepare(self, *, is_root: bool) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        # logs/ and sock/ are sticky and world-writable: postgres writes its log and socket there.
        for sub, mode in (("logs", 0o1777), ("pids", 0o755), ("sock", 0o1777), ("nginx", 0o755)):
            d = self.base_dir / sub
            d.mkdir(exist_ok=True)
            d.chmod(mode)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name, target in (("logs", self.logs_dir), ("data", self.base_dir)):
            link = self.run_dir / name
            if link.is_symlink() and link.resolve() == target.resolve():
                continue
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        if is_root:
            self._check_traversable()

    def _check_traversable(self) -> None:
        for parent in [self.base_dir, *self.base_dir.parents]:
            if not parent.stat().st_mode & 0o001:
                raise StackError(f"{parent} is not traversable by the postgres user; choose another base dir")

    def remove(self) -> None:
        """Delete all data and the links to it (the config in ``run_dir`` stays)."""
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
        for name in ("logs", "data"):
            link = self.run_dir / name
            if link.is_symlink():
                link.unlink()

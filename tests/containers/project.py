"""What the container tier's modules share: a deployed compose project, and what it leaves behind."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from devtools.containers.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = str(ROOT / "ops" / "compose")


@dataclass(frozen=True)
class Deployed:
    project: str
    url: str
    engine: Engine
    up_output: str

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMPOSE, *args, "--project", self.project], capture_output=True, text=True, timeout=timeout, check=False
        )

    def containers(self, service: str) -> list[str]:
        listed = self.engine.run(
            "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        )  # fmt: skip
        return listed.stdout.split()

    def address(self, container: str) -> str:
        info = self.engine.inspect([container])[0]
        networks = info["NetworkSettings"]["Networks"]  # type: ignore[index]
        return " ".join(sorted(n["IPAddress"] for n in networks.values()))


def leftovers(engine: Engine, project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    found = engine.run("ps", "-a", "-q", "--filter", label).stdout.split()
    found += [v for v in engine.run("volume", "ls", "-q").stdout.split() if v.startswith(f"{project}_")]
    found += [
        n for n in engine.run("network", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(f"{project}_")
    ]
    return found

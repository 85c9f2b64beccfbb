"""HTTP throughput ratios, measured with wrk against dedicated single-process app instances.

Each variant runs as its own ``uvicorn`` process (one worker, uvloop + httptools, the server
command ``ops/dev`` uses) on the dev stack's Postgres and Redis; wrk (C, 1 thread, fixed
connections) drives one URL per run; variants are interleaved and each figure is the median of
several runs, so drift on this shared 2-core machine hits all variants alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.stack import PROJECT_DIR, free_port


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    factory: str
    env: dict[str, str]
    ready_path: str = "/healthz"  # answered 200 once the instance is up


@dataclass(frozen=True, slots=True)
class Probe:
    """One URL of one variant, with the request headers wrk sends."""

    variant: Variant
    path: str
    headers: tuple[str, ...] = ()
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.variant.name} {self.path}" + (f" ({self.note})" if self.note else "")


def wrk_rps(url: str, seconds: int, connections: int, headers: tuple[str, ...] = ()) -> float:
    """Requests per second reported by one wrk run (2xx and 304 count as answers)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found: apt-get install wrk")
    header_args = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", *header_args, url], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out and not headers:
        raise RuntimeError(f"non-2xx responses from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    return float(match.group(1))


@contextmanager
def instance(variant: Variant, base_env: dict[str, str]) -> Iterator[str]:
    """A single-process app instance for ``variant``; yields its base URL."""
    port = free_port()
    env = {**os.environ, **base_env, **variant.env, "CATALOG_LOG_LEVEL": "warning"}
    cmd = [
        sys.executable, "-m", "uvicorn", variant.factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{variant.name} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                with urllib.request.urlopen(f"{url}{variant.ready_path}", timeout=1):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def app_env_from_stack(run_dir: str) -> dict[str, str]:
    """Settings for bench instances: the dev stack's databases as the app role, production defaults."""
    import msgspec

    from devtools.stack import StackConfig

    config = msgspec.json.decode((Path(run_dir) / "stack.json").read_bytes(), type=StackConfig)
    env = config.app_env(0)
    env["CATALOG_INSTANCE_NAME"] = "bench"
    return env


def measure(
    probes: list[Probe], base_env: dict[str, str], *, runs: int, seconds: int, connections: int
) -> dict[str, list[float]]:
    """Median-ready samples: for each run, each probe once, interleaved."""
    results: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for probe in probes:
            if probe.variant.name not in urls:
                urls[probe.variant.name] = stack.enter_context(instance(probe.variant, base_env))
        for probe in probes:  # warm up: fill caches and connection pools
            wrk_rps(urls[probe.variant.name] + probe.path, 1, connections, probe.headers)
        for _ in range(runs):
            for probe in probes:
                url = urls[probe.variant.name] + probe.path
                results.setdefault(probe.label, []).append(wrk_rps(url, seconds, connections, probe.headers))
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)

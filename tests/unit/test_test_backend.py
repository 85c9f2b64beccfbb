"""``CATALOG_TEST_BACKEND``: a bad value stops the run in one line; on containers the system tier
is skipped with a reason instead of passing or failing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devtools.stack import PROJECT_DIR
from tests.fixtures.backend import selected_backend


def test_the_backend_is_local_unless_containers_is_asked_for() -> None:
    assert selected_backend({}) == "local"
    assert selected_backend({"CATALOG_TEST_BACKEND": ""}) == "local"
    assert selected_backend({"CATALOG_TEST_BACKEND": "containers"}) == "containers"
    with pytest.raises(ValueError, match="CATALOG_TEST_STACK shapes the local stack"):
        selected_backend({"CATALOG_TEST_BACKEND": "containers", "CATALOG_TEST_STACK": "replicas=2"})


def _pytest(backend: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CATALOG_TEST_BACKEND": backend}
    env.pop("CATALOG_TEST_STACK", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unknown_backend_stops_the_run_with_one_line_naming_the_choices() -> None:
    result = _pytest("kubernetes", "tests/unit/test_architecture.py")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.strip().splitlines() == [
        "ERROR: CATALOG_TEST_BACKEND='kubernetes' is not a test backend: choose local or containers"
    ]


def test_on_containers_the_system_tier_is_skipped_with_the_reason() -> None:
    result = _pytest("containers", "tests/system/test_http_lint.py", "-q", "-rs")
    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert " passed" not in result.stdout
    assert "skipped" in result.stdout
    assert "CATALOG_TEST_BACKEND=containers: the system tier needs the whole local stack" in result.stdout

"""API fuzzing: Schemathesis drives the running app through its own OpenAPI document, every check on.

The harness
-----------
- The app runs in this test's own event loop, as in every integration test: ``running_app`` starts
  its lifespan (asyncpg pools, Redis, the outbox relay) on this test's scratch database, and
  uvicorn serves that same app object from a task in the same loop on a free loopback port
  (``lifespan="off"``: the lifespan is already running).
- Schemathesis runs as its CLI (``schemathesis run``) in a subprocess that the test awaits, so
  the loop keeps serving while it works. Why not its pytest integration: ``schema.parametrize()``
  needs the schema at collection time (there is no database or app then), and the lazy
  ``schemathesis.pytest.from_fixture`` reaches into a pytest attribute that pytest 9.2 removed
  (``Function._nodeid``). Why not its ASGI transport: it runs the app on an event loop of its
  own in another thread, where the pools made on this loop cannot be used. The CLI is also
  exactly what a developer reruns by hand, and its warnings and threads stay out of pytest's
  ``filterwarnings = error``.
- Every phase (examples, coverage, fuzzing, stateful) and every check (``--checks all``:
  server errors, status codes, content types, response schemas and headers, negative data
  rejected, positive data accepted, missing required headers, unsupported methods, Allow
  headers, use after free, resource availability, ignored auth). Admin routes get the admin
  Bearer token on every request.
- Bounded and reproducible: a few examples per operation, deterministic generation (no
  randomness, no example database), a per-request timeout and a deadline for the whole run.

On failure the message lists each failing check with its operations, and the captured stdout
holds Schemathesis's own report: one minimal example per failure with a ``curl`` line that
reproduces it (the ``Authorization`` header shows as ``[Filtered]``: it is ``Bearer
<stack.config.admin_token>``). ``schemathesis explain ST105`` names the check behind a code.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.fixtures.app import running_app
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("schemathesis.toml")  # the statuses the API refuses with on purpose
MAX_EXAMPLES = 25  # test cases per operation (fuzzing) and scenarios (stateful); coverage adds its own
REQUEST_TIMEOUT_S = 5
RUN_DEADLINE_S = 80  # the whole Schemathesis run; a healthy one takes well under 20 s


@pytest.fixture
async def live_app(db: ScratchDatabase) -> AsyncIterator[str]:
    """The app on this test's database, in this test's loop, served over HTTP on 127.0.0.1."""
    async with running_app(db.settings(relay_enabled=True)) as (app, _client):
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it Nagle's algorithm and delayed ACKs stall every response by ~40 ms (a run 8x slower).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan="off", ws="none", log_config=None, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="schemathesis-target")
        try:
            while not server.started:
                if serving.done():
                    serving.result()  # raises why it stopped
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await serving
            sock.close()


def _summary(report: dict[str, Any]) -> str:
    """``ST105 Undocumented Content-Type (13): GET /orders/{order_id}, ...``: one line a failing check."""
    lines = [
        f"  {failure['code']} {failure['title']} ({failure['count']}): {', '.join(failure['operations'])}"
        for failure in report.get("failures", [])
    ]
    lines += [f"  error: {error}" for error in report.get("errors", [])]
    return "\n".join(lines)


async def test_the_api_keeps_its_openapi_contract(live_app: str, admin_headers: dict[str, str], tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    args = [
        *("-m", "schemathesis.cli", "--config-file", str(CONFIG), "--no-color"),
        *("run", f"{live_app}/schema/openapi.json"),
        *("--checks", "all"),
        *("--phases", "examples,coverage,fuzzing,stateful"),
        *("--header", f"Authorization: {admin_headers['Authorization']}"),
        *("--max-examples", str(MAX_EXAMPLES)),
        "--generation-deterministic",
        "--continue-on-failure",  # every distinct failure of an operation, not only its first
        *("--workers", "1"),
        *("--request-timeout", str(REQUEST_TIMEOUT_S)),
        *("--report", "json", "--report-json-path", str(report_path)),
    ]
    # cwd: Schemathesis and Hypothesis keep their caches there; nothing lands in the checkout.
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=RUN_DEADLINE_S)
    except TimeoutError:
        pytest.fail(f"Schemathesis did not finish within {RUN_DEADLINE_S} s", pytrace=False)
    finally:
        if process.returncode is None:  # timed out or cancelled: do not leave it running
            process.kill()
            await process.wait()
    if process.returncode == 0:
        return
    # The full report goes to the captured stdout (shown once, under the failure); the message is
    # the short list, which pytest repeats in its summary.
    print(output.decode(errors="replace"))
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    pytest.fail(
        f"Schemathesis found the API breaking its OpenAPI contract (exit {process.returncode}; "
        f"its report, with a curl line per failure, is in the captured stdout):\n{_summary(report)}",
        pytrace=False,
    )

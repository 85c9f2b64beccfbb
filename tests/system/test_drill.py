"""``ops/drill`` on the suite's stack: a few faults the service already survives, at a small scale.

The full matrix (``ops/drill``) takes a few minutes; this runs the faults the service is most
often asked about (the primary gone, Redis restarted empty, the relay's connections killed, an
instance killed) at a small scale, with the load, recovery, drain and stale checks all for real.
"""

from __future__ import annotations

import time

import pytest

from devtools.drill import Row, run_drill
from devtools.stack import Stack

pytestmark = pytest.mark.system

FAULTS_THAT_PASS = ["primary", "redis-restart", "relay-kill", "instance-kill"]


@pytest.fixture(scope="module")
def rows(stack: Stack) -> dict[str, Row]:
    started = time.monotonic()
    result = run_drill(stack, FAULTS_THAT_PASS, scale=0.3, workers=4)
    print(f"\ndrill of {len(result)} faults took {time.monotonic() - started:.0f} s")
    return {row.fault: row for row in result}


@pytest.mark.parametrize("fault", FAULTS_THAT_PASS)
def test_fault_passes_its_verdict(rows: dict[str, Row], fault: str) -> None:
    row = rows[fault]
    detail = f"{row.reasons} problems={row.problems} notes={row.notes}"
    assert row.display_reads > 50, detail  # the load really ran
    assert row.writes_ok > 0, detail
    assert row.ryw_checked > 0, detail
    # With the primary gone, a writer's read of their own just-committed product may be refused
    # (503): the replica cannot prove it has the write. Everyone else's reads are all served.
    assert row.display_ok == row.display_reads or row.display_exempt is not None, detail
    assert row.writes_failed == 0, detail
    assert row.server_errors == 0, detail
    assert row.ryw_violations == 0, detail
    assert row.stale == 0, detail
    assert row.drained_s is not None, detail
    assert row.recovery_s is not None, detail
    assert row.ok, detail


def test_the_stack_is_whole_afterwards(rows: dict[str, Row], stack: Stack) -> None:
    assert rows
    assert all(stack.running(service) for service in stack.config.services)


def test_unknown_faults_are_refused(stack: Stack) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        run_drill(stack, ["no-such-fault"])

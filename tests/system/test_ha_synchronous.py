"""Patroni's synchronous_mode (``ops/dev up --ha --synchronous``): the fault that loses acknowledged
writes with asynchronous replication (tests/system/test_ha.py) loses none.

The primary's WAL senders are stopped for a second, then the primary member is killed: commits wait
for the synchronous standby instead of being acknowledged, and Patroni promotes only that standby,
which has every acknowledged write.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.drill.ha import run_drill_ha
from devtools.stack import Stack
from tests.fixtures.stack import own_stack

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def sync_stack() -> Iterator[Stack]:
    with own_stack(ha=True, synchronous=True) as stack:
        yield stack


def test_a_lost_primary_member_loses_no_acknowledged_write(sync_stack: Stack) -> None:
    (row,) = run_drill_ha(sync_stack, ["member-loss"])

    assert row.mode == "synchronous"
    assert row.loss_judged
    assert row.ledger_server_errors == 0, row.notes
    assert row.stale == 0
    assert row.acknowledged > 0
    assert row.acknowledged_lost == 0, row.notes
    assert row.leader_after != row.leader_before

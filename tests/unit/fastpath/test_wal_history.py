"""Replica lag in time: how long ago the primary first had WAL the replica has not replayed."""

from __future__ import annotations

import math

from app.fastpath.replica_monitor import WalHistory


def _history() -> WalHistory:
    history = WalHistory(interval_s=0.1)
    for at, lsn in ((10.0, 100), (10.1, 100), (10.2, 150), (10.3, 150), (10.4, 400)):
        history.record(at, lsn)
    return history


def test_nothing_sampled_means_unknown_lag() -> None:
    assert math.isinf(WalHistory(interval_s=0.1).lag_of(0, now=1.0))


def test_a_caught_up_replica_has_no_lag_however_idle_the_primary_is() -> None:
    assert _history().lag_of(400, now=99.0) == 0.0
    assert _history().lag_of(401, now=99.0) == 0.0


def test_lag_counts_from_when_the_primary_moved_past_the_replica() -> None:
    history = _history()
    # The primary passed 150 between the samples at 10.3 and 10.4: at 10.5 the lag is 0.2 s.
    assert math.isclose(history.lag_of(150, now=10.5), 0.2)
    # It passed 100 between 10.1 and 10.2.
    assert math.isclose(history.lag_of(120, now=10.5), 0.4)


def test_a_replica_behind_everything_remembered_is_older_than_the_history() -> None:
    assert math.isclose(_history().lag_of(50, now=10.5), 0.5 + 0.1)


def test_a_position_lower_than_the_last_is_ignored() -> None:
    history = _history()
    history.record(10.5, 10)  # a sample from a restarted monitor must not rewind the history
    assert history.lag_of(400, now=11.0) == 0.0

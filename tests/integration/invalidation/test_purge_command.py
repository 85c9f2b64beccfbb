"""``ops/outbox purge`` and ``retry`` on real data: a dry run changes nothing and says what it
would do; a purge of 100k events reports progress on stderr and ends; a time bound stops it with
exit status 1 and says more is left; retry makes at most --limit events due."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from app.admin_cli import outbox
from tests.fixtures.database import ScratchDatabase

pytestmark = pytest.mark.integration

OLD_BATCHES = """
INSERT INTO outbox_processed (processed_at, processed_by, events, last_event_id, event_ids, event_types,
                              aggregate_ids, payloads, created_at, attempts)
SELECT now() - interval '2 days', 'old', $1, g * $1, array_fill(g::bigint, ARRAY[$1]),
       array_fill('product.updated'::text, ARRAY[$1]), array_fill(1::bigint, ARRAY[$1]),
       array_fill('{"id": 1, "version": 1}'::text, ARRAY[$1]), array_fill(now(), ARRAY[$1]),
       array_fill(1, ARRAY[$1])
FROM generate_series(1, $2) AS g
"""


async def _processed(primary: asyncpg.Connection) -> int:
    return int(await primary.fetchval("SELECT coalesce(sum(events), 0) FROM outbox_processed"))


def _run(db: ScratchDatabase, *argv: str) -> int:
    # outbox.main runs its own event loop: call it from a thread, as the command would run.
    return outbox.main(["--dsn", db.primary_dsn, *argv])


async def test_a_dry_run_says_what_it_would_delete_and_deletes_nothing(
    db: ScratchDatabase, primary: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    await primary.execute(OLD_BATCHES, 100, 30)
    code = await asyncio.to_thread(_run, db, "purge", "--older-than", "1d", "--dry-run", "--json")
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"batches": 30, "events": 3000, "dry_run": True}
    assert await _processed(primary) == 3000


async def test_a_purge_of_100k_events_reports_progress_and_ends(
    db: ScratchDatabase, primary: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    await primary.execute(OLD_BATCHES, 1000, 100)  # 100k events in 100 batches
    code = await asyncio.to_thread(_run, db, "purge", "--older-than", "1d", "--batch-size", "5000")
    out, err = capsys.readouterr()
    assert code == 0
    progress = [line for line in err.splitlines() if line.strip().startswith("purged ")]
    assert len(progress) >= 5, err
    assert progress[-1].strip().startswith("purged 100000 of 100000 events")
    assert "deleted 100000 processed events older than 86400 s" in out
    assert await _processed(primary) == 0


async def test_a_time_bound_stops_the_purge_and_says_more_is_left(
    db: ScratchDatabase, primary: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    await primary.execute(OLD_BATCHES, 50, 2000)
    # One batch per statement: 2,000 statements take longer than the 1 s bound.
    code = await asyncio.to_thread(
        _run, db, "purge", "--older-than", "1d", "--batch-size", "1", "--max-seconds", "1", "--json"
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["complete"] is False
    assert 0 < result["deleted"] < 100_000
    assert await _processed(primary) == 100_000 - result["deleted"]


async def test_retry_makes_at_most_limit_failing_events_due(
    db: ScratchDatabase, primary: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    await primary.execute(
        """INSERT INTO outbox (event_type, aggregate_id, payload, attempts, last_error, next_attempt_at)
           SELECT 'product.updated', g, jsonb_build_object('id', g, 'version', 2), 3, 'redis: down',
                  now() + interval '1 hour'
           FROM generate_series(1, 50) AS g"""
    )
    assert await asyncio.to_thread(_run, db, "retry", "--dry-run", "--limit", "20", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"failing": 50, "would_retry": 20, "dry_run": True}
    assert await primary.fetchval("SELECT count(*) FROM outbox WHERE next_attempt_at <= now()") == 0
    assert await asyncio.to_thread(_run, db, "--json", "retry", "--limit", "20") == 0
    assert json.loads(capsys.readouterr().out) == {"retried": 20, "failing_not_retried": 30}
    assert await primary.fetchval("SELECT count(*) FROM outbox WHERE next_attempt_at <= now()") == 20

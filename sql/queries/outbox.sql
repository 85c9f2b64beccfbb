-- claim_batch --
-- Claim due events (SKIP LOCKED; never WHERE id > last_seen) and mark them processed by relay $2, uncommitted: the relay commits only after Redis took them, so a crash or a rollback re-delivers. One row: the batch as arrays (NULL when none was due) and the WAL position, read after every claimed event committed.
WITH claimed AS (
    UPDATE outbox
    SET processed_at = clock_timestamp(), processed_by = $2, attempts = attempts + 1, last_error = NULL
    WHERE ctid = ANY (ARRAY (
        SELECT ctid FROM outbox
        WHERE processed_at IS NULL AND next_attempt_at <= clock_timestamp()
        ORDER BY id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING id, event_type, payload, created_at
)
SELECT pg_current_wal_insert_lsn()::text AS lsn,
       array_agg(id) AS ids,
       array_agg(event_type) AS event_types,
       array_agg(payload::text) AS payloads,
       array_agg(extract(epoch FROM created_at)::float8) AS created_at
FROM claimed;

-- mark_failed --
-- After the claim rolled back: count the attempt, keep the error, back off (capped exponential).
UPDATE outbox
SET attempts = attempts + 1,
    last_error = $2,
    next_attempt_at = clock_timestamp()
        + least(make_interval(secs => $3), make_interval(secs => 0.1 * power(2, least(attempts, 16))))
WHERE id = ANY($1::bigint[]) AND processed_at IS NULL;

-- purge_processed --
-- Retention: delete one batch of events processed before the cutoff.
WITH doomed AS (
    SELECT id FROM outbox
    WHERE processed_at IS NOT NULL AND processed_at < clock_timestamp() - make_interval(secs => $1)
    ORDER BY processed_at
    LIMIT $2
)
DELETE FROM outbox WHERE id IN (SELECT id FROM doomed);

-- backlog --
-- Pending count and the age of the oldest pending event, for metrics and ops.
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_pending_age_seconds
FROM outbox
WHERE processed_at IS NULL;

-- status_by_type --
-- ops/outbox status: per event type, pending, failing and recent throughput.
SELECT event_type,
       count(*) FILTER (WHERE processed_at IS NULL) AS pending,
       count(*) FILTER (WHERE processed_at IS NULL AND attempts > 0) AS failing,
       count(*) FILTER (WHERE processed_at >= clock_timestamp() - interval '1 minute') AS processed_last_minute,
       count(*) FILTER (WHERE processed_at >= clock_timestamp() - interval '1 hour') AS processed_last_hour,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE processed_at IS NULL)), 0)::float8
           AS oldest_pending_age_seconds
FROM outbox
GROUP BY event_type
ORDER BY event_type;

-- failing_events --
-- ops/outbox status: unprocessed events that have failed at least once, with their last error.
SELECT id, event_type, aggregate_id, attempts, last_error, next_attempt_at, created_at
FROM outbox
WHERE processed_at IS NULL AND attempts > 0
ORDER BY id
LIMIT $1;

-- recent_events --
-- ops/outbox tail: the newest events (after $1, for follow mode), oldest first.
SELECT id, event_type, aggregate_id, payload, created_at, attempts, last_error, processed_at, processed_by
FROM (
    SELECT * FROM outbox WHERE id > $1 ORDER BY id DESC LIMIT $2
) AS newest
ORDER BY id;

-- retry_failing --
-- ops/outbox retry: make every failing event due now.
UPDATE outbox SET next_attempt_at = clock_timestamp()
WHERE processed_at IS NULL AND attempts > 0;

-- wal_insert_lsn --
-- Read by the relay after claiming: the list generations it bumps remember this position.
SELECT pg_current_wal_insert_lsn()::text;

-- announce_invalidations --
-- Tell every instance's near cache which product versions this batch invalidated: one NOTIFY per payload, all sent at COMMIT.
SELECT pg_notify('catalog_invalidation', payload) FROM unnest($1::text[]) AS payload;

-- recently_processed --
-- Cache amnesia: the events processed within the last $1 seconds (the fences' span), after id $2, to re-apply.
SELECT id, payload
FROM outbox
WHERE processed_at >= clock_timestamp() - make_interval(secs => $1) AND id > $2
ORDER BY id
LIMIT $3;

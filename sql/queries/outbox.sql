-- claim_batch --
-- Claim due events (SKIP LOCKED; never WHERE id > last_seen), delete them from the outbox and file them as one outbox_processed row by relay $2, uncommitted: the relay commits only after Redis took them, so a crash or a rollback re-delivers. One row of the batch as arrays and the WAL position (read after every claimed event committed); none when nothing was due.
WITH claimed AS (
    DELETE FROM outbox
    WHERE ctid = ANY (ARRAY (
        SELECT ctid FROM outbox
        WHERE next_attempt_at <= clock_timestamp()
        ORDER BY id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING id, event_type, aggregate_id, payload, created_at, attempts + 1 AS attempts
), batch AS (
    -- One pass: element i of every array is the same event.
    SELECT count(*)::integer AS events, max(id) AS last_event_id, array_agg(id) AS ids,
           array_agg(event_type) AS event_types, array_agg(aggregate_id) AS aggregate_ids,
           array_agg(payload::text) AS payloads, array_agg(created_at) AS created_at,
           array_agg(extract(epoch FROM created_at)::float8) AS created_epochs, array_agg(attempts) AS attempts
    FROM claimed
    HAVING count(*) > 0
), filed AS (
    INSERT INTO outbox_processed
        (processed_at, processed_by, events, last_event_id, event_ids, event_types, aggregate_ids, payloads,
         created_at, attempts)
    SELECT clock_timestamp(), $2, events, last_event_id, ids, event_types, aggregate_ids, payloads, created_at, attempts
    FROM batch
)
SELECT pg_current_wal_insert_lsn()::text AS lsn,
       ids,
       event_types,
       payloads,
       created_epochs AS created_at
FROM batch;

-- mark_failed --
-- After the claim rolled back: count the attempt, keep the error, back off (capped exponential).
UPDATE outbox
SET attempts = attempts + 1,
    last_error = $2,
    next_attempt_at = clock_timestamp()
        + least(make_interval(secs => $3), make_interval(secs => 0.1 * power(2, least(attempts, 16))))
WHERE id = ANY($1::bigint[]);

-- purge_processed --
-- Retention: delete the oldest batches processed before the cutoff, about $2 events' worth (at least one batch); how many batches and events went.
WITH doomed AS (
    SELECT id
    FROM (
        SELECT id, events, sum(events) OVER (ORDER BY processed_at, id) AS upto
        FROM outbox_processed
        WHERE processed_at < clock_timestamp() - make_interval(secs => $1)
    ) AS old
    WHERE upto - events < $2
), gone AS (
    DELETE FROM outbox_processed WHERE id IN (SELECT id FROM doomed) RETURNING events
)
SELECT count(*) AS batches, coalesce(sum(events), 0)::bigint AS events FROM gone;

-- backlog --
-- Pending count and the age of the oldest pending event, for metrics and ops.
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_pending_age_seconds
FROM outbox;

-- status_by_type --
-- ops/outbox status: per event type, pending, failing and recent throughput (event types seen pending or processed within the hour).
WITH pending AS (
    SELECT event_type,
           count(*) AS pending,
           count(*) FILTER (WHERE attempts > 0) AS failing,
           extract(epoch FROM clock_timestamp() - min(created_at))::float8 AS oldest_pending_age_seconds
    FROM outbox
    GROUP BY event_type
), processed AS (
    SELECT t.event_type,
           count(*) FILTER (WHERE b.processed_at >= clock_timestamp() - interval '1 minute') AS processed_last_minute,
           count(*) AS processed_last_hour
    FROM outbox_processed AS b
    CROSS JOIN LATERAL unnest(b.event_types) AS t (event_type)
    WHERE b.processed_at >= clock_timestamp() - interval '1 hour'
    GROUP BY t.event_type
)
SELECT event_type,
       coalesce(p.pending, 0) AS pending,
       coalesce(p.failing, 0) AS failing,
       coalesce(d.processed_last_minute, 0) AS processed_last_minute,
       coalesce(d.processed_last_hour, 0) AS processed_last_hour,
       coalesce(p.oldest_pending_age_seconds, 0)::float8 AS oldest_pending_age_seconds
FROM pending AS p
FULL JOIN processed AS d USING (event_type)
ORDER BY event_type;

-- failing_events --
-- ops/outbox status: pending events that have failed at least once, with their last error.
SELECT id, event_type, aggregate_id, attempts, last_error, next_attempt_at, created_at
FROM outbox
WHERE attempts > 0
ORDER BY id
LIMIT $1;

-- recent_events --
-- ops/outbox tail: the newest $2 events after id $1, pending or processed, oldest first. The batches holding the newest $2 processed events are among the $2 batches with the highest last_event_id.
SELECT id, event_type, aggregate_id, payload, created_at, attempts, last_error, processed_at, processed_by
FROM (
    (SELECT id, event_type, aggregate_id, payload, created_at, attempts, last_error,
            NULL::timestamptz AS processed_at, NULL::text AS processed_by
     FROM outbox WHERE id > $1 ORDER BY id DESC LIMIT $2)
    UNION ALL
    (SELECT e.id, e.event_type, e.aggregate_id, e.payload::jsonb, e.created_at, e.attempts, NULL::text,
            b.processed_at, b.processed_by
     FROM (SELECT * FROM outbox_processed WHERE last_event_id > $1 ORDER BY last_event_id DESC LIMIT $2) AS b
     CROSS JOIN LATERAL unnest(b.event_ids, b.event_types, b.aggregate_ids, b.payloads, b.created_at, b.attempts)
         AS e (id, event_type, aggregate_id, payload, created_at, attempts)
     WHERE e.id > $1)
    ORDER BY id DESC
    LIMIT $2
) AS newest
ORDER BY id;

-- retry_failing --
-- ops/outbox retry: make the oldest $1 failing events due now.
UPDATE outbox SET next_attempt_at = clock_timestamp()
WHERE id IN (SELECT id FROM outbox WHERE attempts > 0 ORDER BY id LIMIT $1);

-- failing_count --
-- ops/outbox retry --dry-run: how many events have failed at least once.
SELECT count(*) AS failing FROM outbox WHERE attempts > 0;

-- purge_preview --
-- ops/outbox purge --dry-run: the processed batches and events older than $1 seconds.
SELECT count(*) AS batches, coalesce(sum(events), 0)::bigint AS events
FROM outbox_processed
WHERE processed_at < clock_timestamp() - make_interval(secs => $1);

-- wal_insert_lsn --
-- Read by the relay after claiming: the list generations it bumps remember this position.
SELECT pg_current_wal_insert_lsn()::text;

-- primary_timeline --
-- Read by the relay on every connect: which history this primary's data belongs to (cluster
-- identity and WAL timeline). A promoted replica keeps the identity and starts a new timeline.
SELECT (SELECT system_identifier FROM pg_control_system())::text || ':'
       || ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int::text;

-- announce_invalidations --
-- Tell every instance's near cache which product versions this batch invalidated: one NOTIFY per payload, all sent at COMMIT.
SELECT pg_notify('catalog_invalidation', payload) FROM unnest($1::text[]) AS payload;

-- recently_processed --
-- Cache amnesia: the next batch (after batch $2) processed within the last $1 seconds (the fences' span), to re-apply.
SELECT id, payloads
FROM outbox_processed
WHERE processed_at >= clock_timestamp() - make_interval(secs => $1) AND id > $2
ORDER BY id
LIMIT 1;

-- quarantine_events --
-- In the claim's transaction: file the batch's events that break the contract, with the reason.
INSERT INTO outbox_quarantine (event_id, event_type, payload, reason, quarantined_by)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], array_fill($5::text, ARRAY[cardinality($1)]))
ON CONFLICT (event_id) DO NOTHING;

-- quarantined_count --
-- ops/outbox status: how many events were quarantined.
SELECT count(*) FROM outbox_quarantine;

-- quarantined_events --
-- ops/outbox quarantine: the newest $1 quarantined events, with the reason.
SELECT event_id, event_type, payload, reason, quarantined_by, quarantined_at
FROM outbox_quarantine
ORDER BY event_id DESC
LIMIT $1;

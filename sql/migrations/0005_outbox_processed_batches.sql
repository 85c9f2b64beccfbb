-- Processed events leave the outbox: the relay's claim deletes the batch's rows and files the
-- batch as one row of arrays in outbox_processed (docs/adr/0013). Rewriting each processed row in
-- place (new row version, two index entries) was the drain's largest cost; one row per batch is
-- cheap to write, to keep for inspection, and to purge. Payloads are kept as the text the relay
-- reads, and the arrays are compressed with lz4: pglz took as long as the rest of the claim.
CREATE TABLE outbox_processed (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    processed_at   timestamptz NOT NULL,
    processed_by   text,
    events         integer NOT NULL,
    last_event_id  bigint NOT NULL,
    -- One element per event, in the same order in every array.
    event_ids      bigint[] COMPRESSION lz4 NOT NULL,
    event_types    text[] COMPRESSION lz4 NOT NULL,
    aggregate_ids  bigint[] COMPRESSION lz4 NOT NULL,
    payloads       text[] COMPRESSION lz4 NOT NULL,
    created_at     timestamptz[] COMPRESSION lz4 NOT NULL,
    attempts       integer[] COMPRESSION lz4 NOT NULL
);
CREATE INDEX outbox_processed_at_idx ON outbox_processed (processed_at);
CREATE INDEX outbox_processed_last_event_idx ON outbox_processed (last_event_id);

-- Events processed before this migration move over, grouped per relay and second (at most 2,000
-- to a row); a group's processed_at is its latest, so retention keeps them at most a second longer.
INSERT INTO outbox_processed
    (processed_at, processed_by, events, last_event_id, event_ids, event_types, aggregate_ids, payloads, created_at, attempts)
SELECT max(processed_at), processed_by, count(*), max(id), array_agg(id ORDER BY id), array_agg(event_type ORDER BY id),
       array_agg(aggregate_id ORDER BY id), array_agg(payload::text ORDER BY id), array_agg(created_at ORDER BY id),
       array_agg(attempts ORDER BY id)
FROM (
    SELECT *, (row_number() OVER (PARTITION BY processed_by, date_trunc('second', processed_at) ORDER BY id) - 1) / 2000
              AS chunk
    FROM outbox
    WHERE processed_at IS NOT NULL
) AS processed
GROUP BY processed_by, date_trunc('second', processed_at), chunk
ORDER BY max(processed_at);
DELETE FROM outbox WHERE processed_at IS NOT NULL;

-- What is left in the outbox is still to do: the primary key serves the claim's ORDER BY id.
DROP INDEX outbox_pending_idx;
DROP INDEX outbox_processed_idx;
ALTER TABLE outbox DROP COLUMN processed_at, DROP COLUMN processed_by;

-- The outbox as it reads to a person: one row per event, pending or processed.
CREATE VIEW outbox_events AS
SELECT id, event_type, aggregate_id, payload, created_at, attempts, last_error, next_attempt_at,
       NULL::timestamptz AS processed_at, NULL::text AS processed_by
FROM outbox
UNION ALL
SELECT e.id, e.event_type, e.aggregate_id, e.payload::jsonb, e.created_at, e.attempts, NULL::text, NULL::timestamptz,
       b.processed_at, b.processed_by
FROM outbox_processed AS b
CROSS JOIN LATERAL unnest(b.event_ids, b.event_types, b.aggregate_ids, b.payloads, b.created_at, b.attempts)
    AS e (id, event_type, aggregate_id, payload, created_at, attempts);

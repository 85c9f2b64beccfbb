-- The relay claims pending events in id order: index exactly that, so a claim reads the oldest
-- pending entries first instead of every pending entry (or every processed row of the primary key)
-- before it. Events waiting out a retry backoff are few and skipped by the scan's filter.
DROP INDEX outbox_pending_idx;
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE processed_at IS NULL;

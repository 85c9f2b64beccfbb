-- Events whose payload breaks the event contract: filed here, with the reason, by the batch that
-- claimed them (the rest of the batch is applied as usual); ops/outbox status counts them and
-- ops/outbox quarantine lists them.
CREATE TABLE outbox_quarantine (
    event_id        bigint PRIMARY KEY,
    event_type      text NOT NULL,
    payload         text NOT NULL,
    reason          text NOT NULL,
    quarantined_by  text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

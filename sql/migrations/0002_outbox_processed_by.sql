-- Which relay processed an event: for inspection, and to prove no event is handled twice.
ALTER TABLE outbox ADD COLUMN processed_by text;

-- primary_status --
-- Readiness of the primary: where its WAL is now.
SELECT pg_current_wal_lsn()::text AS lsn, pg_is_in_recovery() AS in_recovery;

-- replica_status --
-- Readiness of a replica: replay position, whether replay is paused, time of the last replayed commit.
SELECT pg_is_in_recovery() AS in_recovery,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       pg_is_wal_replay_paused() AS replay_paused,
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) AS since_last_replay_s;

-- primary_lsn --
-- Replica monitor: the primary's WAL position, sampled to turn replay LSNs into lag in time.
SELECT pg_current_wal_lsn()::text;

-- replica_replay_lsn --
-- Replica monitor: how far this replica has replayed; NULL once it is no replica (promoted: its
-- last replayed position stays frozen there, so the function alone would not say).
SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END;

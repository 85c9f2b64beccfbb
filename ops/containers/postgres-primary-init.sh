#!/bin/sh
# Runs once, when the primary's data directory is created (docker-entrypoint-initdb.d):
# a replication role for the replica, and pg_hba entries that let it stream.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '${REPLICATION_PASSWORD}';
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"

#!/bin/sh
# The streaming replica: on first start, clone the primary with pg_basebackup (-R writes the
# standby settings) from $PRIMARY_HOST:$PRIMARY_PORT (primary:5432), then run postgres as the
# image's entrypoint would.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "replica: cloning the primary"
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    until PGPASSWORD="$REPLICATION_PASSWORD" gosu postgres pg_basebackup \
            -h "${PRIMARY_HOST:-primary}" -p "${PRIMARY_PORT:-5432}" -U replicator -D "$PGDATA" -R -X stream -c fast; do
        echo "replica: primary not ready, retrying"
        sleep 2
    done
fi
# max_connections (and the other settings a standby must not set below its primary's) come
# from the environment: pg_basebackup copies postgresql.conf, not the primary's command line.
exec docker-entrypoint.sh postgres -c hot_standby=on -c hot_standby_feedback=on \
    -c max_connections="${REPLICA_MAX_CONNECTIONS:-300}"

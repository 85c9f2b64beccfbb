#!/bin/sh
# docker-entrypoint.sh of the Debian-built postgres base image (ops/compose images): the part of
# the official image's entrypoint that compose.yaml relies on, nothing more.
#   - as root: own $PGDATA, then run again as postgres;
#   - on an empty $PGDATA: initdb with $POSTGRES_USER/$POSTGRES_PASSWORD (scram for TCP, trust on
#     the socket; $POSTGRES_HOST_AUTH_METHOD=trust for throwaway test servers), create $POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sh and *.sql against a
#     server that listens on the socket only, stop it;
#   - then exec the command (postgres with its -c settings).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA POSTGRES_USER POSTGRES_DB

if [ "${1:-}" != postgres ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec gosu postgres "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ "$auth" != trust ]; then
        : "${POSTGRES_PASSWORD:?the postgres base image needs POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)}"
    fi
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host="$auth" >/dev/null
    rm -f "$pwfile"
    echo "host all all all $auth" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"

    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
            -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "initdb: running $f"; . "$f" ;;
            *.sql) echo "initdb: running $f"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$f" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "initdb: done"
fi

exec "$@"

#!/bin/sh
# A streaming replica of $PRIMARY_HOST in compose mode (`sdlab up --compose --replicas N`), for the
# official postgres image and the stand-in alike: on an empty data directory, copy the primary with
# pg_basebackup -R (standby.signal and primary_conninfo written for us), name the WAL receiver
# $REPLICA_NAME (the name synchronous_standby_names and pg_stat_replication use); then run the
# given command. No failover: a replica stays one until its volume goes (Patroni needs local mode).
set -e
: "${PRIMARY_HOST:?set PRIMARY_HOST: the service this replica copies}"
: "${REPLICA_NAME:?set REPLICA_NAME: its application_name on the primary}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -q -h "$PRIMARY_HOST" -U postgres; do
        sleep 1
    done
    mkdir -p "$PGDATA"
    # What an interrupted copy left behind: pg_basebackup wants an empty directory.
    find "$PGDATA" -mindepth 1 -delete
    pg_basebackup -h "$PRIMARY_HOST" -U postgres -D "$PGDATA" -R -X stream -c fast
    # Appended after the line -R wrote, so this one wins.
    echo "primary_conninfo = 'host=$PRIMARY_HOST port=5432 user=postgres application_name=$REPLICA_NAME'" \
        >> "$PGDATA/postgresql.auto.conf"
    chmod 700 "$PGDATA"
fi
exec "$@"

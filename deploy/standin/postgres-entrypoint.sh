#!/bin/sh
# The part of the official image's entrypoint the lab uses: on an empty data directory, initdb
# (the local mode's flags), listen on every address and let the network in with
# POSTGRES_HOST_AUTH_METHOD; then run the given command.
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # The stand-in sets no password, so only a method that needs none can work.
    : "${POSTGRES_HOST_AUTH_METHOD:?set POSTGRES_HOST_AUTH_METHOD=trust: the stand-in sets no password}"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    initdb -D "$PGDATA" --auth=trust -U "${POSTGRES_USER:-postgres}" --encoding=UTF8 >/dev/null
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all $POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
fi
exec "$@"

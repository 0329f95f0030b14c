# Stand-in for prom/prometheus: the server from Debian's own package (2.42, from the base's apt
# source). Only the package's server and web files are unpacked: its dependencies are the classic
# UI's JavaScript libraries (Debian's libjs-*, over 200 MB), so the UI's pages load without their
# scripts, while scraping and the HTTP API work.
ARG BASE=sdlab-base:bookworm
FROM ${BASE}

RUN cd /tmp \
    && apt-get update -qq \
    && apt-get download -qq prometheus \
    && dpkg-deb -x prometheus_*.deb /tmp/prometheus \
    && mv /tmp/prometheus/usr/bin/prometheus /usr/bin/prometheus \
    && mv /tmp/prometheus/usr/share/prometheus /usr/share/prometheus \
    && rm -rf /tmp/prometheus* /var/lib/apt/lists/* \
    && useradd --system --no-create-home prometheus \
    && mkdir -p /prometheus \
    && chown prometheus:prometheus /prometheus

# The official image's entrypoint and data path, so the real file's mount and ports apply as they are.
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

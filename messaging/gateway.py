"""The gateway process: ``python -m messaging.gateway --host H --port P``.

It holds the WebSocket connections (the ``websockets`` library's own asyncio server, ~15 KiB
per idle connection here against ~33 KiB through uvicorn's ASGI stack), reads its delivery
topic, keeps its users' routes alive in Redis, and answers ``/healthz``, ``/readyz`` and
``/metrics`` on the same port for the balancer, the lab and Prometheus. SIGTERM drains it:
no new connections, every socket closed with 1001, so clients reconnect to another gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal
import socket
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from messaging.config import MessagingSettings
from messaging.adapters.redis import BellListener
from messaging.delivery import DeliveryReader, Heartbeat, OutboxFlusher
from messaging.domain import MAX_FRAME_BYTES
from messaging.main import wire
from messaging.metrics import GatewayCollector, GatewayStats, ack_latency, delivery_lag
from messaging.ws import TRY_AGAIN_LATER, Connection, Hub, serve_connection
from services.app import readiness, running
from services.auth import bearer_token
from services.errors import Unauthorized
from services.logging import configure_logging, get_logger
from services.metrics import ClientGauges
from services.settings import load_settings

log = get_logger(__name__)
SERVICE = "messaging-gateway"


def _response(status: int, body: bytes, content_type: str) -> Response:
    code = HTTPStatus(status)
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Connection", "close" if status >= 400 else "keep-alive")])
    return Response(code.value, code.phrase, headers, body)


def _json(status: int, body: dict) -> Response:
    return _response(status, orjson.dumps(body), "application/json")


class Gateway:
    def __init__(self, settings: MessagingSettings) -> None:
        self.settings = settings
        self.name = settings.instance_id
        self.wiring = wire(settings)
        self.stats = GatewayStats()
        self.registry = CollectorRegistry()
        self.registry.register(GatewayCollector(SERVICE, self.stats))
        self.registry.register(ClientGauges(SERVICE, shards=self.wiring.db))
        self.ack_seconds = ack_latency(self.registry).labels(SERVICE)
        self.hub = Hub(self.wiring.service, self.stats, settings.send_buffer_bytes,
                       delivery_lag(self.registry).labels(SERVICE))
        self.wiring.service.publisher.here(self.name, self.hub.deliver)
        self.reader = DeliveryReader(settings, self.hub)
        self.bell = BellListener(lambda: self.wiring.redis.redis, self.name, self.reader.ring)
        self.heartbeat = Heartbeat(settings, self.wiring.service, on_presumed_dead=self.hub.close_all)
        self.flusher = OutboxFlusher(settings, self.wiring.service.publisher)
        self.resources = [self.wiring.redis, self.wiring.db, self.wiring.reads, self.wiring.producer, self.heartbeat,
                          self.reader, self.bell, self.flusher]

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return _json(200, {"status": "alive", "service": SERVICE, "instance": self.name})
        if url.path == "/readyz":
            return _json(*await readiness(SERVICE, self.name, self.resources, self.settings.readiness_timeout_s))
        if url.path == "/metrics":
            return _response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if url.path != "/ws":
            return _json(404, {"error": {"code": "not_found", "status": 404,
                                                     "message": "this is a gateway: open a WebSocket at /ws"}})
        token = parse_qs(url.query).get("token", [None])[0] or bearer_token(request.headers.get("Authorization"))
        try:
            connection.lab_user = self.wiring.signer.verify(token)
        except Unauthorized as exc:
            return _json(401, {"error": {"code": exc.code, "status": 401, "message": exc.message}})
        return None

    async def handle(self, ws: ServerConnection) -> None:
        if self.settings.socket_send_buffer_bytes:
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.socket_send_buffer_bytes)
        conn = Connection(ws, ws.lab_user)
        if self.hub.add(conn) and not await self.heartbeat.connected(conn.user):
            self.hub.remove(conn)
            await ws.close(TRY_AGAIN_LATER, "presence registry unavailable; reconnect shortly")
            return
        self.hub.spawn(self.hub.start_after(conn, self.settings.resume_grace_s))
        try:
            await serve_connection(self.hub, conn, self.ack_seconds)
        finally:
            if self.hub.remove(conn):
                self.hub.spawn(self.heartbeat.disconnected(conn.user))

    async def run(self, host: str, port: int) -> None:
        configure_logging(SERVICE, self.name, self.settings.log_level, self.settings.log_format)
        # The library logs every connection and health probe at INFO; keep its warnings only.
        logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with running(self.resources):
            async with serve(self.handle, host, port, process_request=self.process_request,
                             compression="deflate" if self.settings.compression else None,
                             max_size=MAX_FRAME_BYTES, ping_interval=self.settings.ping_interval_s,
                             close_timeout=self.settings.close_timeout_s, server_header=None) as server:
                log.info("gateway_started", address=f"{host}:{port}", write_path=self.settings.write_path)
                await stop.wait()
                log.info("gateway_draining", connections=self.stats.connections)
                server.close()  # stop accepting; every socket gets 1001 (going away)
                await server.wait_closed()
        log.info("gateway_stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m messaging.gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    args = parser.parse_args(argv)
    # Each connection is a file descriptor: allow as many as the hard limit (10k+ connections).
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(Gateway(load_settings(MessagingSettings)).run(args.host, args.port))


if __name__ == "__main__":
    main()

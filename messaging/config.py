"""Messaging settings: the only place messaging reads its environment (``MESSAGING_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.settings import LoginSettings


class MessagingSettings(LoginSettings):
    model_config = SettingsConfigDict(env_prefix="MESSAGING_", extra="ignore", frozen=True)

    public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8081")
    # Signs the lab login's tokens. The default is public: refused beyond loopback (`sdlab up`
    # generates one per lab home). Shop uses its own setting.
    token_secret: SecretStr = SecretStr("sdlab-dev-token-secret-change-me")

    # Where the truth is first written: PostgreSQL then Kafka (outbox), or Kafka then PostgreSQL.
    write_path: Literal["db-first", "log-first"] = "db-first"

    # Per connection: bytes waiting to be written before the client counts as a slow reader
    # and is disconnected (close code 4008), so one slow reader never holds up another.
    send_buffer_bytes: int = Field(256 * 1024, ge=4096)
    # The kernel's send buffer per socket (SO_SNDBUF). Left to autotuning it grows to tcp_wmem's
    # maximum (4 MiB here), so a reader that stops reading parks megabytes in the kernel before the
    # bound above sees anything, and 10k such readers would pin gigabytes. 0: leave it to the kernel.
    socket_send_buffer_bytes: int = Field(64 * 1024, ge=0)
    # permessage-deflate: off by default (it costs ~50 KiB per connection), on by setting.
    compression: bool = False
    # Protocol pings keep idle connections alive through the balancer and find dead peers.
    ping_interval_s: float = Field(20.0, gt=0)
    close_timeout_s: float = Field(2.0, gt=0)

    # Per-user send rate (token bucket in Redis, shared by every gateway).
    send_rate_per_s: float = Field(50.0, gt=0)
    send_burst: int = Field(100, ge=1)

    # Presence: a gateway refreshes its liveness key every heartbeat; when it dies, its users
    # count as offline once the key's TTL runs out.
    heartbeat_s: float = Field(1.0, gt=0)
    presence_ttl_s: float = Field(4.0, gt=0)
    # Presence frames go to peers in conversations of at most this many members; members of
    # larger groups ask GET /api/v1/presence (pushing every join to a 1,000-member group
    # would cost a million frames when its members connect).
    presence_max_group: int = Field(100, ge=2)

    # A new connection's live messages wait for its first frame (a resume says where the client
    # stands), at most this long: a client that never resumes gets them after the grace.
    resume_grace_s: float = Field(1.0, ge=0)

    # A gap before a live message waits this long for the missing ones to arrive live (out of
    # order, by another path) before the database is asked for them.
    gap_grace_s: float = Field(0.2, ge=0)

    history_page: int = Field(500, ge=1, le=1000)
    # Replays (resume, gap repair) running at once per gateway; the rest of the pool serves sends.
    replay_concurrency: int = Field(4, ge=1)
    # db-first: the gateway that stores a message publishes it at once; its outbox rows are
    # deleted in one statement every outbox_flush_s. The relay sweeps rows older than
    # outbox_stale_s (a gateway died between its commit and Kafka's ack), every relay_poll_s.
    outbox_flush_s: float = Field(0.2, gt=0)
    outbox_stale_s: float = Field(2.0, gt=0)
    relay_poll_s: float = Field(1.0, gt=0)
    relay_batch: int = Field(500, ge=1)
    # A gateway's reader pauses reader_awake_s after its last record (no polls at rest) and looks
    # once by itself every reader_check_s; a publisher rings a gateway it has not sent to for
    # bell_quiet_s, which must stay below reader_awake_s (the margin covers a record's way there).
    reader_awake_s: float = Field(2.0, gt=0)
    reader_check_s: float = Field(5.0, gt=0)
    bell_quiet_s: float = Field(1.0, gt=0)
    db_pool_size: int = Field(10, ge=1)

    # How long a fetch waits on the broker for records. Apache Kafka answers a waiting fetch as
    # soon as a record arrives; Tansu (measured: 42 ms median hop at 100 ms, 2.7 ms at 5 ms) lets
    # it wait the whole time, so on Tansu this bounds delivery latency, at the price of idle polling.
    fetch_max_wait_ms: int = Field(5, ge=1, le=5000)
    sent_topic: str = "message-sent"
    # Tansu creates a missing topic by itself, with 4 partitions, on the first produce after a
    # restart (its log is in memory); a producer that still believes in another count then writes
    # to partitions no consumer reads (measured: 40% of acked messages lost). The same count on
    # both sides keeps a re-created topic whole. On Apache Kafka, turn auto-creation off instead.
    sent_partitions: int = Field(4, ge=1)
    delivery_topic_prefix: str = "gateway-inbox."
    # Fan-out workers join this consumer group for the sent topic (log-first).
    persister_group: str = "messaging-persister"

    def delivery_topic(self, gateway: str) -> str:
        return f"{self.delivery_topic_prefix}{gateway}"

"""Typed settings shared by every design.

Each design subclasses :class:`ServiceSettings` in its own ``config.py`` with its own env
prefix (``SHORTENER_``, ...). Connection settings are URL-shaped so that a user can point a
design at an existing server by pasting the URL they already have.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AnyUrl, Field, PostgresDsn, RedisDsn, UrlConstraints, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

KafkaBootstrap = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["kafka", "tcp"])]


def split_csv(value: object) -> object:
    """Accept ``a,b,c`` from the environment as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def split_urls(value: object) -> object:
    """``url,url`` from the environment, where a URL may itself hold commas (a multi-host
    ``postgresql://u@h1:5432,h2:5442/db``): a comma starts a new URL only before ``scheme://``."""
    if isinstance(value, str):
        return [part.strip() for part in re.split(r",(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)", value) if part.strip()]
    return value


class ServiceSettings(BaseSettings):
    """What every service instance needs: who it is, how it logs, where its parts are."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    instance_id: str = "local-1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    # One URL per PostgreSQL server; a design that shards uses all of them, others use the first.
    database_urls: Annotated[list[PostgresDsn], NoDecode] = Field(
        default_factory=lambda: [PostgresDsn("postgresql://postgres@127.0.0.1:5432/postgres")],
        min_length=1,
    )
    kafka_bootstrap_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:9092"], min_length=1
    )

    # With replicas in a database URL (a multi-host URL lists every member of the server), the reads
    # that tolerate staleness go to a replica; off, every read goes to the primary.
    read_from_replicas: bool = True
    # How long a read-your-writes read waits for its replica to replay the write before it asks the primary.
    read_after_wait_s: float = Field(0.05, ge=0, le=5)

    # Timeouts are short on purpose: a dependency that hangs must not hang the caller.
    redis_timeout_s: float = Field(0.25, gt=0)
    database_timeout_s: float = Field(1.0, gt=0)
    # Well under the load balancer's health-check timeout (2 s): a readiness probe that waits on a
    # hung dependency must still answer in time, or the balancer drops a healthy instance.
    readiness_timeout_s: float = Field(0.5, gt=0)

    @field_validator("database_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        return split_urls(value)

    @field_validator("kafka_bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"Kafka bootstrap server {server!r} must be host:port")
        return servers

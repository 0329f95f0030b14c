"""Typed settings shared by every design.

Each design subclasses :class:`ServiceSettings` in its own ``config.py`` with its own env
prefix (``SHORTENER_``, ...). Connection settings are URL-shaped so that a user can point a
design at an existing server by pasting the URL they already have.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import (
    AnyUrl,
    Field,
    PostgresDsn,
    RedisDsn,
    SecretStr,
    UrlConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
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


def is_loopback(host: str) -> bool:
    """Whether only this machine reaches ``host``; a name other than localhost counts as reachable."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


class ServiceSettings(BaseSettings):
    """What every service instance needs: who it is, how it logs, where its parts are."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    instance_id: str = "local-1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    # The address this process listens on. Whoever starts the server sets it (uvicorn's --host is
    # invisible to the app): beyond loopback, the built-in secrets below are refused.
    bind_host: str = "127.0.0.1"
    # Whether people on other hosts reach this design's public port (an Ingress, a published port):
    # then its lab login is guarded (:class:`LoginSettings`). Unset: whether bind_host is beyond loopback.
    exposed: bool | None = None
    # Peers (addresses or CIDR networks) allowed to tell us the client address in
    # X-Forwarded-For: the load balancer only.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1"])
    # Settings holding a secret whose built-in default is public (it is in this repository).
    public_default_secrets: ClassVar[tuple[str, ...]] = ()

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

    @field_validator("kafka_bootstrap_servers", "trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"trusted proxy {entry!r} is not an IP address or network") from None
        return entries

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"Kafka bootstrap server {server!r} must be host:port")
        return servers

    @property
    def beyond_loopback(self) -> bool:
        return not is_loopback(self.bind_host)

    @property
    def guarded(self) -> bool:
        """Whether others may reach the design: its login wants the lab password, admins an explicit list."""
        return self.exposed if self.exposed is not None else self.beyond_loopback

    def env_name(self, setting: str) -> str:
        return f"{self.model_config.get('env_prefix', '')}{setting}".upper()

    @model_validator(mode="after")
    def _no_public_secret_when_reachable(self) -> ServiceSettings:
        if not (self.beyond_loopback or self.guarded):
            return self
        where = (f"it listens on {self.bind_host} ({self.env_name('bind_host')})" if self.beyond_loopback
                 else f"{self.env_name('exposed')} is true")
        for name in self.public_default_secrets:
            value: SecretStr = getattr(self, name)
            if not value.get_secret_value() or value == type(self).model_fields[name].default:
                raise ValueError(f"{self.env_name(name)} is unset or the public default from the repository, "
                                 f"and {where}: set a random secret of your own (`sdlab up` generates one)")
        return self


class LoginSettings(ServiceSettings):
    """A design with the lab login (:mod:`services.auth`): its token secret and, when guarded, its lab password."""

    public_default_secrets: ClassVar[tuple[str, ...]] = ("token_secret",)

    token_secret: SecretStr  # each design declares its own, with its own (public) default
    token_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    # Asked of every login once the design is guarded (exposed); loopback logins need none.
    lab_password: SecretStr | None = None
    # Logins per client address while guarded (a token bucket per instance): slows password guessing.
    login_rate_per_s: float = Field(0.5, gt=0)
    login_burst: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _password_when_guarded(self) -> LoginSettings:
        if self.guarded and (self.lab_password is None or not self.lab_password.get_secret_value()):
            raise ValueError(f"{self.env_name('lab_password')} must be set: others can reach this design "
                             f"({self.env_name('bind_host')}={self.bind_host}, {self.env_name('exposed')}="
                             f"{self.exposed}) and its login would give anyone a token")
        return self


AnySettings = TypeVar("AnySettings", bound=ServiceSettings)


def load_settings(cls: type[AnySettings]) -> AnySettings:
    """``cls`` read from the environment; a process that cannot have them exits with one line per problem
    (the setting's name and why), not a traceback."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(_one_line(cls, error) for error in exc.errors())
        raise SystemExit(f"refusing to start: {problems}") from None


def _one_line(cls: type[ServiceSettings], error: dict) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    where = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{prefix}{where.upper()}: {message}" if where else message

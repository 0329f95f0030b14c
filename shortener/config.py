"""Shortener settings: the only place the shortener reads its environment (``SHORTENER_*``)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.settings import ServiceSettings, split_csv


class ShortenerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHORTENER_", extra="ignore", frozen=True)
    # The counter scheme's key is refused at its default in every scheme: a variant may switch the
    # scheme by one setting, and codes must not turn predictable with it.
    public_default_secrets: ClassVar[tuple[str, ...]] = ("id_secret",)

    public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8080")
    # Extra host names that are this shortener too (links to them would loop).
    own_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["localhost", "127.0.0.1"])

    id_scheme: Literal["hash", "counter", "random"] = "hash"
    code_length: int = Field(7, ge=5, le=12)
    # Keys the counter scheme's permutation: whoever knows it can turn codes back into counter values
    # and list every link (links can be private). The default is public: refused beyond loopback.
    id_secret: SecretStr = SecretStr("sdlab-dev-secret")
    counter_lease_size: int = Field(1000, ge=1)
    max_url_length: int = Field(2048, ge=64)
    redirect_status: Literal[301, 302] = 302

    cache_enabled: bool = True
    cache_ttl_s: int = Field(3600, ge=1)
    cache_ttl_jitter: float = Field(0.1, ge=0, le=0.5)
    negative_ttl_s: int = Field(30, ge=1)
    single_flight: bool = True
    # In-process cache of the hottest links; 0 turns it off. Its TTL bounds how long a deleted
    # link can still redirect on an instance that missed the invalidation message.
    local_cache_size: int = Field(10_000, ge=0)
    local_cache_ttl_s: float = Field(5.0, gt=0)
    redis_breaker_failures: int = Field(3, ge=1)
    redis_breaker_reset_s: float = Field(1.0, gt=0)
    db_breaker_failures: int = Field(5, ge=1)
    db_breaker_reset_s: float = Field(2.0, gt=0)
    db_pool_size: int = Field(10, ge=1)

    rate_limit_per_minute: int = Field(600, ge=1)
    rate_limit_burst: int = Field(60, ge=1)

    analytics_enabled: bool = True
    analytics_flush_interval_s: float = Field(0.5, gt=0)
    # Distinct codes buffered while Kafka is unreachable; beyond this, new codes' clicks are dropped (and counted).
    analytics_max_pending_codes: int = Field(200_000, ge=1)
    clicks_topic: str = "link-clicked"

    @field_validator("own_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return split_csv(value)

    @property
    def public_base(self) -> str:
        return str(self.public_url).rstrip("/")

    @property
    def all_own_hosts(self) -> frozenset[str]:
        host = (urlsplit(self.public_base).hostname or "").lower()
        return frozenset({host, *(h.lower() for h in self.own_hosts)} - {""})

"""Shop settings: the only place the shop (API, payments, workers) reads its environment (``SHOP_*``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.settings import LoginSettings, split_csv

InventoryStrategy = Literal["conditional-update", "select-for-update", "redis-gate"]


class ShopSettings(LoginSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_", extra="ignore", frozen=True)

    public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8082")
    # Signs the lab login's tokens (the same login as messaging, its own secret). The default is
    # public: refused beyond loopback (`sdlab up` generates one per lab home).
    token_secret: SecretStr = SecretStr("sdlab-dev-shop-token-secret-change-me")
    # Users who may create products. The default holds only while the shop is not guarded (loopback):
    # a guarded shop has the admins SHOP_ADMINS names, none without it (see admin_users).
    admins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["admin"])

    # Sharding. The number of buckets is fixed for the life of the data (ids carry the bucket);
    # the shard map, stored on the first server, says which server holds each bucket.
    buckets: int = Field(256, ge=1, le=1024)
    # The first server ("home") holds the map, the payment stand-in's charges and fulfillment's
    # table. False deals the buckets over the other servers only, so data shards scale on their
    # own and the home is a coordinator (read when the first map is made; needs 2+ servers).
    home_holds_buckets: bool = True
    # Instances hear of a new shard map at once (NOTIFY on the first server) and reload it when
    # that connection comes back; this poll is the last resort (a hung, not closed, connection).
    shard_map_poll_s: float = Field(30.0, gt=0)
    # A write to a bucket being moved waits this long for the move to finish, then answers 503.
    moving_bucket_wait_s: float = Field(3.0, ge=0)
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)

    # Catalog.
    # Each shard gets this long to answer a listing; a shard that does not is named in "missing".
    # 0 waits for every shard (no deadline), which the scatter-gather experiment compares against.
    scatter_deadline_s: float = Field(0.25, ge=0)
    product_cache_ttl_s: int = Field(300, ge=1)

    # Carts live in Redis, one hash per user, forgotten after this long without a change.
    cart_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    cart_max_lines: int = Field(50, ge=1)

    # Checkout.
    inventory_strategy: InventoryStrategy = "conditional-update"
    # sync: the buyer waits for the payment and gets 201 paid (or 402). async: the buyer gets 202
    # once the stock is reserved and the order placed; the worker charges and settles from the
    # order-placed event, and an unpaid reservation expires back into stock (the flash-sale design).
    checkout_mode: Literal["sync", "async"] = "sync"
    # Checkouts running at once per instance, and how long one more waits for a turn before 429.
    # In flight ≈ rate × time in the service (Little's law): 300 checkouts/s × ~60 ms (with the
    # payment stand-in's 20 ms) is 18 per instance of two; 64 leaves room for the provider's jitter.
    checkout_max_in_flight: int = Field(64, ge=1)
    checkout_queue_s: float = Field(2.0, ge=0)
    # A reservation whose saga died returns its stock after this long (the sweeper releases it).
    reservation_ttl_s: float = Field(60.0, gt=0)
    # A checkout holds its idempotency key this long (well over the longest saga: its steps are
    # bounded by the database and payments timeouts); a retry after that takes over a crashed one,
    # and the sweeper finishes or undoes an order left pending once its lease is over.
    idempotency_lease_s: float = Field(10.0, gt=0)
    # The sweeper's round (each costs a few statements per shard); recovery takes up to the lease
    # plus this.
    sweep_interval_s: float = Field(5.0, gt=0)

    # The payment provider (the lab's stand-in, its own service) as the shop calls it.
    payments_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8090")
    payments_timeout_s: float = Field(2.0, gt=0)
    # The stand-in's behaviour (read by the payments service itself).
    payments_latency_ms: float = Field(20.0, ge=0)
    payments_jitter_ms: float = Field(10.0, ge=0)
    payments_decline_rate: float = Field(0.0, ge=0, le=1)
    # Answers 503 without charging (a provider error).
    payments_failure_rate: float = Field(0.0, ge=0, le=1)
    # Charges, then answers 503 anyway (a response lost on the way back: the nasty case).
    payments_lost_response_rate: float = Field(0.0, ge=0, le=1)

    # Events (through the transactional outbox, keyed by order id).
    placed_topic: str = "order-placed"
    paid_topic: str = "order-paid"
    failed_topic: str = "order-failed"
    # Tansu creates a missing topic with 4 partitions (see messaging's sent_partitions).
    event_partitions: int = Field(4, ge=1)
    relay_batch: int = Field(200, ge=1)
    # The relay is woken by NOTIFY from the statements that add events, then waits this long for
    # more to gather into one batch (fewer round trips, a little later); it looks anyway every
    # relay_poll_s (a notification lost while its connection was down).
    relay_linger_s: float = Field(0.05, ge=0)
    relay_poll_s: float = Field(5.0, gt=0)
    fulfillment_group: str = "shop-fulfillment"
    # The worker's consumers: paid orders' reservations marked sold; asynchronous checkouts paid.
    inventory_group: str = "shop-inventory"
    payer_group: str = "shop-payer"
    payer_concurrency: int = Field(64, ge=1)

    @field_validator("admins", mode="before")
    @classmethod
    def _split_admins(cls, value: object) -> object:
        return split_csv(value)

    @property
    def admin_users(self) -> frozenset[str]:
        if self.guarded and "admins" not in self.model_fields_set:
            return frozenset()
        return frozenset(self.admins)

    @property
    def event_topics(self) -> list[str]:
        return [self.placed_topic, self.paid_topic, self.failed_topic]

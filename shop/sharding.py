"""Logical buckets over physical shards: the pure half of the shop's sharding. No I/O.

Keys hash into a fixed number of buckets (256 by default, the Notion/Instagram approach); a
versioned :class:`ShardMap` says which PostgreSQL server holds each bucket. Moving data means
moving whole buckets, so resharding never rehashes a key, and a map is small enough for every
instance to cache (it reloads when the version changes).

Ids carry their bucket (Instagram's scheme: 41 bits of milliseconds since an epoch, 10 bits of
bucket, 12 bits of a per-server sequence), so an order or a product is found from its id alone,
without a lookup table. Users have no id: their bucket is the hash of their name.
"""

from __future__ import annotations

from dataclasses import dataclass

import mmh3

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BUCKET_BITS = 10  # room for up to 1,024 buckets
SEQ_BITS = 12  # 4,096 ids per bucket per millisecond
MAX_BUCKETS = 1 << BUCKET_BITS


def bucket_of_key(key: str, buckets: int) -> int:
    """The bucket of a user (or any string key): MurmurHash3 (32-bit, unsigned) modulo the buckets."""
    return mmh3.hash(key.encode(), signed=False) % buckets


def compose_id(ms_since_epoch: int, bucket: int, seq: int) -> int:
    """An Instagram-style id: time | bucket | sequence, which sorts by creation time."""
    if not 0 <= bucket < MAX_BUCKETS:
        raise ValueError(f"bucket {bucket} out of range")
    return (ms_since_epoch << (BUCKET_BITS + SEQ_BITS)) | (bucket << SEQ_BITS) | (seq % (1 << SEQ_BITS))


def bucket_of_id(entity_id: int) -> int:
    return (entity_id >> SEQ_BITS) & (MAX_BUCKETS - 1)


LARGEST_ID = (1 << 63) - 1  # PostgreSQL's bigint


def parse_id(text: str) -> int | None:
    """An id as it appears in a URL or a body (a decimal string: JavaScript cannot hold 63 bits
    in a number); None when it is not one."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= LARGEST_ID else None


@dataclass(frozen=True)
class ShardMap:
    """Which server (an index into ``shards``) holds each bucket, at one version."""

    version: int
    shards: tuple[str, ...]  # the servers' URLs
    assignment: tuple[int, ...]  # bucket -> index into shards

    def __post_init__(self) -> None:
        if not self.assignment or any(not 0 <= s < len(self.shards) for s in self.assignment):
            raise ValueError("every bucket must be assigned to a listed shard")

    @property
    def buckets(self) -> int:
        return len(self.assignment)

    def shard_of_bucket(self, bucket: int) -> int:
        return self.assignment[bucket]

    def shard_of_user(self, user: str) -> int:
        return self.assignment[bucket_of_key(user, self.buckets)]

    def shard_of_id(self, entity_id: int) -> int:
        return self.assignment[bucket_of_id(entity_id) % self.buckets]

    def buckets_of(self, shard: int) -> list[int]:
        return [b for b, s in enumerate(self.assignment) if s == shard]

    def moved(self, bucket: int, to_shard: int) -> "ShardMap":
        assignment = list(self.assignment)
        assignment[bucket] = to_shard
        return ShardMap(self.version + 1, self.shards, tuple(assignment))

    def with_shards(self, shards: tuple[str, ...]) -> "ShardMap":
        return ShardMap(self.version + 1, shards, self.assignment)


def initial_map(shards: tuple[str, ...], buckets: int, *, home_holds_buckets: bool = True) -> ShardMap:
    """Buckets dealt round-robin over the shards; without ``home_holds_buckets`` the first server
    keeps only the map and the shared tables (it needs another server to deal buckets to)."""
    first = 0 if home_holds_buckets else 1
    if first >= len(shards):
        raise ValueError("a home that holds no buckets needs at least one more server")
    return ShardMap(1, shards, tuple(first + b % (len(shards) - first) for b in range(buckets)))


@dataclass(frozen=True)
class BucketMove:
    bucket: int
    source: int
    target: int


def plan_moves(current: ShardMap, shard_count: int) -> list[BucketMove]:
    """The fewest bucket moves that spread the buckets evenly over ``shard_count`` shards.

    Going from N to N+1 shards moves about 1/(N+1) of the buckets, all onto the new shard, taken
    from the fullest shards first (consistent hashing's property, with an explicit map instead of
    a ring). Shrinking is not planned here: removing a server is a different operation.
    """
    if shard_count < len(current.shards):
        raise ValueError("plan_moves only adds shards")
    per_shard = {s: current.buckets_of(s) for s in range(shard_count)}
    base, extra = divmod(current.buckets, shard_count)
    # The fullest shards keep the extra bucket each, so the fewest buckets move.
    order = sorted(range(shard_count), key=lambda s: (-len(per_shard[s]), s))
    target = {s: base + (1 if rank < extra else 0) for rank, s in enumerate(order)}
    donors = [(s, b) for s in order for b in sorted(per_shard[s])[target[s]:]]
    moves: list[BucketMove] = []
    for shard in sorted(range(shard_count), key=lambda s: s):
        need = target[shard] - len(per_shard[shard])
        while need > 0 and donors:
            source, bucket = donors.pop(0)
            moves.append(BucketMove(bucket, source, shard))
            need -= 1
    return moves

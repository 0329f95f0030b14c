"""Logical buckets over physical shards: the bucket hash, ids that carry their bucket, the shard
map and the resharding plan (pure functions, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shop.sharding import (
    BUCKET_BITS,
    EPOCH_MS,
    MAX_BUCKETS,
    SEQ_BITS,
    BucketMove,
    ShardMap,
    bucket_of_id,
    bucket_of_key,
    compose_id,
    initial_map,
    parse_id,
    plan_moves,
)

MAX_MS = (1 << 41) - 1


def _urls(n: int) -> tuple[str, ...]:
    return tuple(f"postgresql://shard-{i}" for i in range(n))


def _apply(current: ShardMap, moves: list[BucketMove], shards: int) -> ShardMap:
    grown = current.with_shards(_urls(shards))
    for move in moves:
        assert grown.assignment[move.bucket] == move.source, f"bucket {move.bucket} is not on {move.source}"
        grown = grown.moved(move.bucket, move.target)
    return grown


def _sizes(m: ShardMap) -> list[int]:
    return [len(m.buckets_of(s)) for s in range(len(m.shards))]


# -- the bucket hash ------------------------------------------------------------------------------

def test_the_bucket_hash_is_unsigned_murmur3_modulo_the_buckets():
    # MurmurHash3 x86_32 of "foo", seed 0, is 0xF6A5C420 (4138058784; -156908512 signed).
    assert bucket_of_key("foo", 1 << 32) == 4138058784
    assert bucket_of_key("foo", 256) == 4138058784 % 256 == 32
    assert bucket_of_key("foo", 1000) == 784


@given(st.text(max_size=40), st.integers(min_value=1, max_value=MAX_BUCKETS))
@settings(max_examples=200, deadline=None)
def test_a_key_always_lands_in_the_same_bucket_within_range(key, buckets):
    bucket = bucket_of_key(key, buckets)
    assert 0 <= bucket < buckets
    assert bucket_of_key(key, buckets) == bucket


def test_users_spread_over_every_bucket():
    hit = {bucket_of_key(f"user_{i}", 256) for i in range(5000)}
    assert hit == set(range(256))


# -- ids ------------------------------------------------------------------------------------------

@given(st.integers(0, MAX_MS), st.integers(0, MAX_BUCKETS - 1), st.integers(0, (1 << SEQ_BITS) - 1))
@settings(max_examples=300, deadline=None)
def test_an_id_carries_its_time_bucket_and_sequence(ms, bucket, seq):
    entity_id = compose_id(ms, bucket, seq)
    assert 0 <= entity_id < (1 << 63)
    assert bucket_of_id(entity_id) == bucket
    assert entity_id >> (BUCKET_BITS + SEQ_BITS) == ms
    assert entity_id & ((1 << SEQ_BITS) - 1) == seq
    assert parse_id(str(entity_id)) == entity_id or entity_id == 0


@given(st.integers(0, MAX_MS - 10_000), st.integers(1, 10_000), st.integers(0, MAX_BUCKETS - 1),
       st.integers(0, MAX_BUCKETS - 1), st.integers(0, 4095), st.integers(0, 4095))
@settings(max_examples=300, deadline=None)
def test_ids_sort_by_time_whatever_their_bucket_and_sequence(ms, later, b1, b2, s1, s2):
    assert compose_id(ms, b1, s1) < compose_id(ms + later, b2, s2)


def test_the_sequence_wraps_within_its_12_bits_and_never_touches_the_bucket():
    assert compose_id(5, 7, 4096) == compose_id(5, 7, 0)
    assert bucket_of_id(compose_id(5, 7, 4095 + 4096)) == 7
    assert compose_id(1, 0, 0) == 1 << 22


@pytest.mark.parametrize("bucket", [-1, MAX_BUCKETS, 5000])
def test_a_bucket_out_of_range_is_refused(bucket):
    with pytest.raises(ValueError, match="out of range"):
        compose_id(1, bucket, 0)


def test_the_epoch_is_2026():
    assert EPOCH_MS == 1_767_225_600_000


@pytest.mark.parametrize("text", ["", "0", "00", "-1", "+1", "1e3", "1.0", " 1", "1 ", "0x1f", "abc",
                                  "1" * 20, "١٢", "１２", "²", str(1 << 63), "9" * 19, None, 12])
def test_parse_id_rejects_anything_but_a_positive_63_bit_decimal(text):
    assert parse_id(text) is None


@pytest.mark.parametrize("text, value", [("1", 1), ("007", 7), (str((1 << 63) - 1), (1 << 63) - 1),
                                         ("1234567890123456789", 1234567890123456789)])
def test_parse_id_accepts_decimal_ids(text, value):
    assert parse_id(text) == value


# -- the shard map ---------------------------------------------------------------------------------

def test_the_initial_map_deals_buckets_round_robin():
    m = initial_map(_urls(3), 256)
    assert m.version == 1 and m.buckets == 256
    assert m.assignment[:7] == (0, 1, 2, 0, 1, 2, 0)
    assert _sizes(m) == [86, 85, 85]
    assert m.buckets_of(2)[:3] == [2, 5, 8]
    one = initial_map(_urls(1), 256)
    assert set(one.assignment) == {0}


def test_a_home_that_holds_no_buckets_deals_them_over_the_other_servers():
    m = initial_map(_urls(3), 256, home_holds_buckets=False)
    assert m.assignment[:5] == (1, 2, 1, 2, 1) and m.buckets_of(0) == [] and _sizes(m)[1:] == [128, 128]
    with pytest.raises(ValueError, match="at least one more server"):
        initial_map(_urls(1), 256, home_holds_buckets=False)


def test_the_map_routes_users_and_ids_through_their_bucket():
    m = initial_map(_urls(4), 256)
    assert m.shard_of_user("foo") == 32 % 4 == 0
    product = compose_id(123, 201, 9)
    assert m.shard_of_id(product) == m.shard_of_bucket(201) == 1


@pytest.mark.parametrize("shards, assignment", [
    (_urls(2), ()),  # no buckets
    (_urls(2), (0, 1, 2)),  # a shard that is not listed
    (_urls(2), (0, -1)),
    ((), (0,)),
])
def test_a_map_assigning_a_bucket_to_no_listed_shard_is_refused(shards, assignment):
    with pytest.raises(ValueError, match="every bucket"):
        ShardMap(1, shards, assignment)


def test_moving_a_bucket_makes_a_new_version_and_leaves_the_old_map_alone():
    m = initial_map(_urls(2), 4)
    moved = m.moved(1, 0)
    assert (moved.version, moved.assignment) == (2, (0, 0, 0, 1))
    assert m.assignment == (0, 1, 0, 1)
    with pytest.raises(ValueError):
        m.moved(1, 2)  # shard 2 is not listed until with_shards adds it
    grown = m.with_shards(_urls(3))
    assert grown.version == 2 and grown.moved(1, 2).assignment == (0, 2, 0, 1)


# -- resharding ----------------------------------------------------------------------------------

@pytest.mark.parametrize("before, after, expected_moves, expected_sizes", [
    (1, 2, 128, [128, 128]),
    (2, 3, 85, [86, 85, 85]),
    (3, 4, 64, [64, 64, 64, 64]),
    (2, 4, 128, [64, 64, 64, 64]),
    (4, 5, 51, [52, 51, 51, 51, 51]),
])
def test_growing_moves_the_fewest_buckets_and_evens_the_shards(before, after, expected_moves, expected_sizes):
    current = initial_map(_urls(before), 256)
    moves = plan_moves(current, after)
    assert len(moves) == expected_moves
    assert len({m.bucket for m in moves}) == len(moves)  # no bucket moves twice
    grown = _apply(current, moves, after)
    assert _sizes(grown) == expected_sizes
    assert max(_sizes(grown)) - min(_sizes(grown)) <= 1
    # Buckets only ever move onto the new shards, from the old ones.
    assert {m.target for m in moves} == set(range(before, after))
    assert {m.source for m in moves} <= set(range(before))


def test_growing_one_shard_at_a_time_moves_about_one_over_n_plus_one_each_step():
    current = initial_map(_urls(1), 256)
    moved = []
    for shards in range(2, 9):
        moves = plan_moves(current, shards)
        assert {m.target for m in moves} == {shards - 1}
        moved.append(len(moves))
        current = _apply(current, moves, shards)
        assert max(_sizes(current)) - min(_sizes(current)) <= 1
    # The new shard's fair share each time (256 / N, rounded down): nothing else moves.
    assert moved == [256 // n for n in range(2, 9)] == [128, 85, 64, 51, 42, 36, 32]


def test_no_move_when_the_count_does_not_change_and_shrinking_is_refused():
    m = initial_map(_urls(3), 256)
    assert plan_moves(m, 3) == []
    with pytest.raises(ValueError, match="only adds"):
        plan_moves(m, 2)


@given(st.integers(1, 5), st.integers(0, 4), st.lists(st.integers(0, 4), min_size=1, max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_map_is_evened_with_the_minimum_number_of_moves(shards, grow, raw):
    assignment = tuple(s % shards for s in raw)
    current = ShardMap(3, _urls(shards), assignment)
    target = shards + grow
    moves = plan_moves(current, target)
    grown = _apply(current, moves, target)
    sizes = _sizes(grown)
    assert max(sizes) - min(sizes) <= 1
    assert len({m.bucket for m in moves}) == len(moves)
    base, extra = divmod(len(assignment), target)
    before = sorted(_sizes(current.with_shards(_urls(target))), reverse=True)
    quota = [base + 1] * extra + [base] * (target - extra)
    assert len(moves) == sum(max(0, have - keep) for have, keep in zip(before, quota))

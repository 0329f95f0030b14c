"""Live resharding, written by hand: moving buckets between PostgreSQL servers under load is what
this design teaches.

Going from N to M servers moves the fewest buckets that even them out (:func:`plan_moves`: about
1/(N+1) of them for one more server). Each bucket moves on its own, while the load goes on:

1. **copy** the bucket's rows to the target, online (writes continue on the source);
2. **block** its writes: take the fence's lock exclusively on the source (``shop_fence`` then
   answers "moving" and writers wait and retry; in-flight writes finish first);
3. **copy the rest** (only rows that changed since step 1) and **verify**: per table, row counts
   and a checksum over every row, source against target, must be equal;
4. **switch**: the target owns the bucket, the source disowns it (which releases the block), and
   the map gets a new version with the bucket on the target; writers that were waiting find the
   bucket "moved", reload the map and go to the target;
5. **clean up** at the end: the sources' copies are deleted once every instance has had time to
   load the new map.

Every step is recorded in ``reshard_moves`` on the first server. Interrupted anywhere, the map is
consistent (a bucket is on its source until its switch is saved); running again resumes: a
half-done copy is redone by difference, and a switch cut between "disowned" and "map saved" is
finished. ``rollback`` moves the switched buckets back the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from shop.adapters import bucket_copy as sql
from shop.sharding import BucketMove, ShardMap, plan_moves

Say = Callable[[str], None]


class ReshardError(Exception):
    pass


@dataclass
class MoveResult:
    bucket: int
    source: int
    target: int
    rows: int
    block_ms: float
    verified: bool
    tables: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass
class ReshardReport:
    from_shards: int
    to_shards: int
    buckets: int
    moves: list[MoveResult] = field(default_factory=list)
    cleaned_rows: int = 0
    map_version: int = 0
    seconds: float = 0.0

    @property
    def rows_moved(self) -> int:
        return sum(m.rows for m in self.moves)

    def block_ms(self, q: float) -> float:
        values = sorted(m.block_ms for m in self.moves)
        return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0

    def as_dict(self) -> dict:
        return {"from_shards": self.from_shards, "to_shards": self.to_shards, "buckets": self.buckets,
                "buckets_moved": len(self.moves), "share_moved": len(self.moves) / self.buckets if self.buckets else 0,
                "rows_moved": self.rows_moved, "block_ms_p50": self.block_ms(0.5),
                "block_ms_max": max((m.block_ms for m in self.moves), default=0.0),
                "verified": all(m.verified for m in self.moves), "cleaned_rows": self.cleaned_rows,
                "map_version": self.map_version, "seconds": self.seconds,
                "moves": [vars(m) | {"tables": {k: list(v) for k, v in m.tables.items()}} for m in self.moves]}


class Resharder:
    def __init__(self, first_url: str, say: Say = print, settle_s: float = 2.0) -> None:
        self._first_url = first_url
        self._say = say
        self._settle_s = settle_s  # how long instances get to load a new map before sources are cleaned
        self._conns: dict[str, asyncpg.Connection] = {}

    async def _conn(self, url: str) -> asyncpg.Connection:
        if url not in self._conns or self._conns[url].is_closed():
            self._conns[url] = await asyncpg.connect(url)
        return self._conns[url]

    async def close(self) -> None:
        for conn in self._conns.values():
            await conn.close()
        self._conns.clear()

    async def _locked(self) -> asyncpg.Connection:
        control = await self._conn(self._first_url)
        if not await control.fetchval("SELECT pg_try_advisory_lock($1)", sql.RESHARD_LOCK):
            raise ReshardError("another reshard is running on this shop (its lock is held on the first server)")
        return control

    async def current(self) -> ShardMap:
        version, shards, assignment = await sql.latest_map(await self._conn(self._first_url))
        return ShardMap(version, tuple(shards), tuple(assignment))

    # --- the commands ----------------------------------------------------------------------
    async def reshard(self, urls: list[str]) -> ReshardReport:
        """Spread the buckets over ``urls`` (the map's servers first, in order, then new ones)."""
        started = time.monotonic()
        control = await self._locked()
        try:
            shard_map = await self._finish_interrupted(await self.current())
            if list(shard_map.shards) != urls[:len(shard_map.shards)]:
                raise ReshardError("the servers given must start with the map's own, in order: "
                                   f"{', '.join(shard_map.shards)}")
            report = ReshardReport(len(shard_map.shards), len(urls), shard_map.buckets)
            if len(urls) > len(shard_map.shards):
                shard_map = ShardMap(shard_map.version + 1, tuple(urls), shard_map.assignment)
                await sql.save_map(control, shard_map.version, list(shard_map.shards), list(shard_map.assignment))
                self._say(f"map v{shard_map.version}: {len(urls)} servers listed (the new ones hold no bucket yet)")
            pending = [r for r in await sql.moves(control) if r["state"] == "planned"]
            if pending:
                self._say(f"resuming an interrupted reshard: {len(pending)} bucket(s) still to move")
                todo = [BucketMove(r["bucket"], r["source"], r["target"]) for r in pending]
            else:
                todo = plan_moves(shard_map, len(urls))
                await sql.plan(control, [(m.bucket, m.source, m.target) for m in todo])
                self._say(f"plan: move {len(todo)} of {shard_map.buckets} buckets "
                          f"({len(todo) / shard_map.buckets:.1%}) onto {len(urls) - report.from_shards} new server(s)")
            report.moves = await self._move_all(todo)
            report.cleaned_rows = await self._clean_up()
            report.map_version = (await self.current()).version
            report.seconds = time.monotonic() - started
            return report
        finally:
            await control.execute("SELECT pg_advisory_unlock($1)", sql.RESHARD_LOCK)

    async def rollback(self) -> ReshardReport:
        """Move every bucket the last reshard moved back to where it came from."""
        started = time.monotonic()
        control = await self._locked()
        try:
            shard_map = await self._finish_interrupted(await self.current())
            rows = await sql.moves(control)
            back = [BucketMove(r["bucket"], shard_map.shard_of_bucket(r["bucket"]), r["source"]) for r in rows
                    if shard_map.shard_of_bucket(r["bucket"]) != r["source"]]
            report = ReshardReport(len(shard_map.shards), len(shard_map.shards), shard_map.buckets)
            self._say(f"rollback: {len(back)} bucket(s) go back to their source")
            await sql.plan(control, [(m.bucket, m.source, m.target) for m in back])
            report.moves = await self._move_all(back)
            report.cleaned_rows = await self._clean_up()
            report.map_version = (await self.current()).version
            report.seconds = time.monotonic() - started
            return report
        finally:
            await control.execute("SELECT pg_advisory_unlock($1)", sql.RESHARD_LOCK)

    # --- one bucket ------------------------------------------------------------------------
    async def _move_all(self, todo: list[BucketMove]) -> list[MoveResult]:
        done = []
        for i, move in enumerate(todo, 1):
            result = await self.move(move)
            done.append(result)
            self._say(f"[{i}/{len(todo)}] bucket {move.bucket}: shard {move.source} -> {move.target}, "
                      f"{result.rows} rows, writes blocked {result.block_ms:.0f} ms, verified")
        return done

    async def move(self, move: BucketMove) -> MoveResult:
        shard_map = await self.current()
        source = await self._conn(shard_map.shards[move.source])
        target = await self._conn(shard_map.shards[move.target])
        control = await self._conn(self._first_url)
        if shard_map.shard_of_bucket(move.bucket) != move.source:
            raise ReshardError(f"bucket {move.bucket} is on shard {shard_map.shard_of_bucket(move.bucket)}, "
                               f"not {move.source}: the map changed under the reshard")
        rows = await sql.copy_bucket(source, target, move.bucket)  # 1. online copy
        async with source.transaction():
            # Writers are refused from the moment the lock is asked for (a try-lock fails behind a
            # waiting exclusive request), so the block is timed from here, waiting for the
            # in-flight writes to finish included.
            blocked_at = time.monotonic()
            await source.execute("SELECT pg_advisory_xact_lock($1, $2)", sql.FENCE_LOCK, move.bucket)  # 2. block
            rows += await sql.copy_bucket(source, target, move.bucket)  # 3. the rest, then verify
            expected, found = await sql.bucket_digest(source, move.bucket), await sql.bucket_digest(target, move.bucket)
            if expected != found:
                raise ReshardError(f"bucket {move.bucket}: the copy on shard {move.target} differs from the source "
                                   f"({expected} vs {found}); nothing was switched")
            await sql.own(target, move.bucket)  # 4. switch: target owns, source disowns (on commit)
            await source.execute("DELETE FROM owned_buckets WHERE bucket = $1", move.bucket)
        moved = shard_map.moved(move.bucket, move.target)
        await sql.save_map(control, moved.version, list(moved.shards), list(moved.assignment))
        block_ms = (time.monotonic() - blocked_at) * 1000
        checksum = ";".join(f"{t}:{n}:{h[:8]}" for t, (n, h) in expected.items())
        await sql.mark(control, move.bucket, "switched", rows=sum(n for n, _ in expected.values()),
                       block_ms=block_ms, checksum=checksum)
        return MoveResult(move.bucket, move.source, move.target, sum(n for n, _ in expected.values()), block_ms,
                          True, expected)

    async def _finish_interrupted(self, shard_map: ShardMap) -> ShardMap:
        """A move cut short: between its source disowning the bucket and the map saying so, it is
        finished; before the source disowned it, the target's claim is withdrawn (the source, which
        the map names, stays the owner, and the move is done again)."""
        control = await self._conn(self._first_url)
        for row in await sql.moves(control):
            if row["state"] != "planned" or shard_map.shard_of_bucket(row["bucket"]) != row["source"]:
                continue
            source = await self._conn(shard_map.shards[row["source"]])
            target = await self._conn(shard_map.shards[row["target"]])
            source_owns, target_owns = await sql.owns(source, row["bucket"]), await sql.owns(target, row["bucket"])
            if source_owns and target_owns:
                await target.execute("DELETE FROM owned_buckets WHERE bucket = $1", row["bucket"])
            elif target_owns:
                shard_map = shard_map.moved(row["bucket"], row["target"])
                await sql.save_map(control, shard_map.version, list(shard_map.shards), list(shard_map.assignment))
                await sql.mark(control, row["bucket"], "switched")
                self._say(f"finished the interrupted switch of bucket {row['bucket']}")
        return shard_map

    async def _clean_up(self) -> int:
        control = await self._conn(self._first_url)
        switched = [r for r in await sql.moves(control) if r["state"] == "switched"]
        if not switched:
            return 0
        await asyncio.sleep(self._settle_s)  # every instance polls the map; give them time to see it
        shard_map = await self.current()
        deleted = 0
        for row in switched:
            deleted += await sql.delete_bucket(await self._conn(shard_map.shards[row["source"]]), row["bucket"])
            await sql.mark(control, row["bucket"], "cleaned")
        self._say(f"cleaned up: {deleted} rows of moved buckets deleted from their sources")
        return deleted

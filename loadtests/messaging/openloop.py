"""Messaging's open-loop generator (``python -m loadtests.messaging.openloop``; the engine runs it).

Every seeded user holds one WebSocket (:mod:`loadtests.messaging.client`). Sends are scheduled
at the offered rate, one clock for the whole run, whether or not earlier sends were acked
(open loop): send k is due at its scheduled instant, goes out then on its sender's socket, and
both its ack and its deliveries are timed from that instant. A sender with more than
``MAX_PENDING`` sends unanswered is saturated: further sends to it are dropped and counted; so
are sends due while ``SDLAB_MAX_VUS`` messages are in flight (:mod:`loadtests.messaging.inflight`),
which bounds the backlog of a run offered more than the stack carries.

Environment (see :mod:`services.lab.generators.script_driver`), plus options (``--option KEY=VALUE``):
``group_share`` (share of sends into groups, default 0.1), ``text_bytes`` (100),
``sender`` (``any`` member, or ``first``: one sender per conversation), ``into_group`` (a size:
every send into the seeded group of that size, from its first member: the fan-out shape),
``slow_readers`` (share of users that stop reading, default 0) from ``slow_from`` to
``slow_until`` (fractions of the run, default 0.3 and 0.7), ``drain_s`` (after the last send, the
most seconds to wait for acks and deliveries, default 60).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import time
from pathlib import Path

from loadtests.messaging.client import UserClient
from loadtests.messaging.frames import text_for
from loadtests.messaging.inflight import InFlight
from loadtests.messaging.samples import Samples
from loadtests.messaging.seed import load_seed
from services.lab.generators.checkpoints import checkpoint

MAX_PENDING = 1000
CONNECT_CONCURRENCY = 200
DRAIN_S = "60"  # after the last send: at most this many seconds for acks and deliveries to arrive


def option(name: str, default: str) -> str:
    return os.environ.get(f"SDLAB_OPT_{name.upper()}", default)


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rate_at(t: float, rate: float, stages: list[dict] | None, start_rate: float) -> float:
    """The arrival rate at ``t`` seconds into the sends: k6's ramping-arrival-rate stages
    (each ramps linearly from the target before to its own over its duration), else ``rate``."""
    if not stages:
        return rate
    before, at = start_rate, 0.0
    for stage in stages:
        length = float(str(stage["duration"]).rstrip("s"))
        if t < at + length:
            return before + (stage["target"] - before) * (t - at) / length
        before, at = stage["target"], at + length
    return before


class Generator:
    def __init__(self, seed: dict) -> None:
        self.seed = seed
        self.rate = float(os.environ["SDLAB_RATE"])
        self.duration = float(os.environ.get("SDLAB_DURATION_S", "30"))
        self.stages = json.loads(os.environ["SDLAB_STAGES"]) if os.environ.get("SDLAB_STAGES") else None
        self.start_rate = float(os.environ.get("SDLAB_START_RATE", "0"))
        self.samples = Samples(float(os.environ.get("SDLAB_T0", time.time())), os.environ.get("SDLAB_TIMELINE"))
        self.group_share = float(option("group_share", "0.1"))
        self.text_bytes = int(option("text_bytes", "100"))
        self.first_sender = option("sender", "any") == "first"
        self.drain_s = float(option("drain_s", DRAIN_S))
        bound = os.environ.get("SDLAB_MAX_VUS")
        self.in_flight = InFlight(int(bound) if bound else None)
        ack_path = os.environ.get("SDLAB_ACK_LOG")
        self._acks = open(ack_path, "a") if ack_path else None
        self.run_tag = seed["run"] + f"{random.getrandbits(24):06x}"  # new per run on the same seed
        convs = seed["conversations"]
        self.members = {c["id"]: len(c["members"]) for c in convs}
        self.pairs = [c for c in convs if c["kind"] == "pair"]
        self.groups = [c for c in convs if c["kind"] == "group"]
        into = option("into_group", "")
        if into:  # every send into the group of that size, from its first member (the fan-out shape)
            self.pairs, self.first_sender = [], True
            self.groups = [c for c in self.groups if len(c["members"]) == int(into)]
            if not self.groups:
                raise SystemExit(f"no seeded group has {into} members")
        positions: dict[str, dict[str, int]] = {u["user"]: {} for u in seed["users"]}
        for c in convs:
            for member in c["members"]:
                positions[member][c["id"]] = c["last_seq"]
        slow_share = float(option("slow_readers", "0"))
        users = seed["users"]
        slow = set(random.Random(7).sample([u["user"] for u in users], round(slow_share * len(users))))
        # Slow readers connect to a gateway directly: through Caddy, its buffers and the kernel's
        # on both of its sockets absorb megabytes before the gateway sees a reader fall behind.
        direct = seed.get("gateway_ws_urls") or [seed["ws_url"]]
        self.clients = {u["user"]: UserClient(u["user"], u["token"], direct[0] if u["user"] in slow else seed["ws_url"],
                                              positions[u["user"]], self.samples, self.log, self.run_tag,
                                              slow=u["user"] in slow, on_delivered=self.delivered)
                        for u in users}
        self.slow = [self.clients[u] for u in slow]

    def log(self, record: dict) -> None:
        if record["event"] == "attempted":
            self.in_flight.sent()
        elif record["event"] == "rejected":
            self.in_flight.refused()
        elif record["event"] == "acknowledged":  # every member gets it, the sender too
            self.in_flight.acknowledged(record["message_id"], self.members[record["conversation_id"]])
        if self._acks is not None:
            self._acks.write(json.dumps(record) + "\n")

    def delivered(self, message_id: str) -> None:
        """A member's socket got it (possibly before its sender's ack: the count goes below 0 first)."""
        self.in_flight.delivered(message_id)

    def pick(self, k: int) -> tuple[dict, str]:
        pool = self.groups if self.groups and (not self.pairs or random.random() < self.group_share) else self.pairs
        conversation = pool[k % len(pool)] if self.first_sender else random.choice(pool)
        sender = conversation["members"][0] if self.first_sender else random.choice(conversation["members"])
        return conversation, sender

    async def schedule(self) -> int:
        """Send on schedule until the duration is over; returns how many sends were due."""
        start = time.time()
        end, due, k = start + self.duration, start, 0
        while due < end:
            now = time.time()
            if due > now:
                await asyncio.sleep(due - now)
            while due <= time.time() and due < end:
                conversation, sender = self.pick(k)
                client = self.clients[sender]
                if len(client.pending) >= MAX_PENDING or self.in_flight.full():
                    self.samples.drop()
                else:
                    client.send(conversation["id"], f"{self.run_tag}-{k}",
                                text_for(self.run_tag, due, k, self.text_bytes), due)
                k += 1
                rate = rate_at(due - start, self.rate, self.stages, self.start_rate)
                due += 1.0 / rate if rate > 0 else 0.01
        return k

    async def slow_readers(self) -> None:
        """The slow readers stop reading for the middle of the run, then read again (and resume)."""
        if not self.slow:
            return
        await asyncio.sleep(float(option("slow_from", "0.3")) * self.duration)
        for client in self.slow:
            client.reading.clear()
        await asyncio.sleep((float(option("slow_until", "0.7")) - float(option("slow_from", "0.3"))) * self.duration)
        for client in self.slow:
            client.reading.set()

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.samples.flush(int(time.time() - self.samples.t0))

    async def drain(self) -> float:
        """Until every send is answered and every acknowledged message reached every member (log-first
        persists after the ack, and a rebalance can hold that up for seconds), at most ``drain_s``;
        returns how long it took."""
        started = time.time()
        while time.time() - started < self.drain_s:
            if not any(c.pending for c in self.clients.values()) and self.in_flight.missing_deliveries() == 0:
                break
            await asyncio.sleep(0.2)
        return time.time() - started

    async def run(self) -> None:
        ticker = asyncio.create_task(self.ticker())
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connected(client: UserClient) -> None:
            async with gate:
                await client.connected.wait()
            await client.resumed.wait()  # sends start in steady state, not in the connection storm

        runs = [asyncio.create_task(c.run()) for c in self.clients.values()]
        await asyncio.wait_for(asyncio.gather(*(connected(c) for c in self.clients.values())), 120)
        print(f"{len(self.clients)} users connected and resumed; sending at {self.rate:.0f}/s for {self.duration:.0f} s", flush=True)
        # The connection storm is not what a message costs: the engine reads the stack's counters here.
        await asyncio.to_thread(checkpoint, "start")
        slow = asyncio.create_task(self.slow_readers())
        started = time.time()
        due = await self.schedule()
        await slow
        drained_s = await self.drain()
        elapsed = time.time() - started
        await asyncio.to_thread(checkpoint, "end")  # before the sockets close (that is not a message's cost either)
        await asyncio.gather(*(client.close() for client in self.clients.values()))
        await asyncio.gather(*runs, return_exceptions=True)
        ticker.cancel()
        self.samples.flush(10**9)
        unanswered = sum(len(c.pending) for c in self.clients.values())
        totals = self.samples.totals(min(elapsed, self.duration), unanswered)
        totals["due"] = due
        totals["drained_s"] = round(drained_s, 1)
        totals["undelivered_at_end"] = self.in_flight.missing_deliveries()
        totals["max_in_flight"] = self.in_flight.limit
        out = Path(os.environ["SDLAB_TOTALS"])
        (out.parent / "readers.json").write_text(json.dumps([c.report() for c in self.clients.values()]))
        if self._acks is not None:
            self._acks.close()
        out.write_text(json.dumps(totals))
        print(f"due {due}, unanswered {unanswered}, dropped {totals['dropped_iterations']}, drained in "
              f"{drained_s:.1f} s, member deliveries missing at the end {totals['undelivered_at_end']}", flush=True)


def main() -> None:
    raise_open_files()
    asyncio.run(Generator(load_seed(os.environ["SDLAB_SEED_FILE"])).run())


if __name__ == "__main__":
    main()

"""``sdlab bench messaging``: the targets of the messaging issue, measured in one sitting.

- ``e2e_p99_ms``: delivery p99 at 1,000 messages/s (1,000 users in pairs) through Caddy and two gateways,
  open loop, and ``floor_p99_ms``: a bare PostgreSQL insert-commit p99 plus a bare Kafka hop
  p99 on the same parts at the same rate (:mod:`loadtests.messaging.floor`). Goal: e2e <= 1.5x floor.
- ``kib_per_idle_connection`` and ``connections_held``: 10,000 idle sockets on one gateway.
  Goals: <= 20 KiB and >= 10,000.
- ``fanout_deliveries_per_s`` from one gateway into a 1,000-member group, and ``fanout_ratio``
  against a bare ``websockets.broadcast()`` server at the same offered rate (:mod:`loadtests.messaging.fanout_bench`).
  Goal: >= 0.5.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from loadtests.messaging.analysis import rss_per_connection
from loadtests.messaging.estimate import deliveries_figure
from loadtests.messaging.fanout_bench import read_all
from loadtests.messaging.floor import floor
from loadtests.messaging.samples import DELIVER
from loadtests.messaging.seed import seed
from messaging.config import MessagingSettings
from services.lab.backends.local.supervisor import down, down_if_running, up
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.contract import BenchOptions
from services.lab.machine import invoked_command, machine_spec
from services.lab.measure.load import LoadSpec, results_dir, run_load, verify

RATE = 1000  # messages/s for the end-to-end figure the issue names
LOW_RATE = 100  # and one this machine carries below its knee, to compare with the floor there too
E2E_USERS = 1000  # in pairs, each sending 1 message/s (a connection's sends are answered in order)
IDLE = 10_000
MEMBERS = 1000
FANOUT_RATE = 400  # messages/s into the group: 400,000 deliveries/s offered, more than 2 cores deliver
FANOUT_SECONDS = 3.0
# The fan-out sender needs more than a person's send rate, and the readers (slower than the
# gateway on the same machine) must not be cut off as slow consumers while the kernel drains them.
APP_ENV = {"MESSAGING_SEND_RATE_PER_S": "1000", "MESSAGING_SEND_BURST": "1000",
           "MESSAGING_SEND_BUFFER_BYTES": str(64 * 2**20)}


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _deliveries(gateway_url: str) -> float:
    text = httpx.get(f"{gateway_url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("ws_deliveries_total"))


async def _gateway_fanout(base_url: str, gateway_url: str, seconds: float) -> float:
    record = await seed(base_url, MEMBERS, (MEMBERS,))
    group = next(c for c in record["conversations"] if c["kind"] == "group")
    tokens = {u["user"]: u["token"] for u in record["users"]}
    ws_url = gateway_url.replace("http://", "ws://", 1) + "/ws?token="
    ready = asyncio.Event()
    reading = asyncio.ensure_future(read_all([ws_url + tokens[m] for m in group["members"]], ready))
    await ready.wait()
    from websockets.asyncio.client import connect

    async with connect(ws_url + tokens[group["members"][0]], ping_interval=None) as sender:
        drain = asyncio.ensure_future(_discard(sender))  # its acks and its own copies: keep reading
        before = await asyncio.to_thread(_deliveries, gateway_url)
        started = time.monotonic()
        for k in range(int(FANOUT_RATE * seconds)):
            delay = started + k / FANOUT_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await sender.send(json.dumps({"type": "send", "conversation_id": group["id"],
                                          "client_msg_id": f"fan-{k}", "text": "x" * 100}))
        # Until the gateway has written every frame (or stopped writing): its rate over that time.
        expected, done, last, last_change = (MEMBERS + 1) * int(FANOUT_RATE * seconds), before, before, time.monotonic()
        while done - before < expected and time.monotonic() - last_change < 2.0:
            await asyncio.sleep(0.25)
            done = await asyncio.to_thread(_deliveries, gateway_url)
            if done != last:
                last, last_change = done, time.monotonic()
        await reading
        drain.cancel()
    return (last - before) / (last_change - started)


async def _discard(ws) -> None:
    async for _ in ws:
        pass


async def _bare_fanout(host: str, out: Path, seconds: float) -> float:
    port = _free_port(host)
    log = open(out / "bare-broadcast.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "loadtests.messaging.fanout_bench", "--port", str(port),
                             "--members", str(MEMBERS), "--rate", str(FANOUT_RATE), "--seconds", str(seconds)],
                            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection((host, port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await read_all([f"ws://{host}:{port}/"] * MEMBERS, asyncio.Event())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    reports = [line for line in (out / "bare-broadcast.log").read_text().splitlines() if line.startswith("{")]
    return json.loads(reports[-1])["deliveries_per_s"] if reports else 0.0


def _cost_figures(cost: dict | None) -> dict:
    cost = cost or {}
    idle = cost.get("idle") or {}
    return {"message_pg_statements": cost.get("pg_statements"), "message_core_ms": cost.get("core_ms_total"),
            "message_core_ms_by_component": cost.get("core_ms"), "idle_cores": idle.get("cores"),
            "idle_pg_statements_per_s": idle.get("pg_statements_per_s")}


def bench(settings: LabSettings, options: BenchOptions, say: Callable[[str], None]) -> tuple[Path, dict]:
    out = results_dir("bench-messaging", settings.results)
    seconds = float(options.duration_s)
    down_if_running(settings, say, "the benchmark starts its own")
    state = up(settings, ["messaging"], app_env=APP_ENV)
    try:
        fetch_wait = MessagingSettings().fetch_max_wait_ms
        pg, kafka = state.components["postgres-0"].url, state.components["kafka"].url
        runs = {}
        for rate in (LOW_RATE, RATE):
            say(f"floor: bare PostgreSQL insert-commit and Kafka hop at {rate}/s for {seconds:.0f} s ...")
            bare = floor(pg, kafka, rate, seconds, fetch_wait)
            say(f"end to end: {rate} messages/s over two gateways for {seconds:.0f} s ...")
            spec = LoadSpec(design="messaging", name=f"bench-e2e-{rate}", generator="script", rate=rate,
                            duration_s=seconds, seed_count=E2E_USERS, options={"group_share": "0"})
            result = run_load(settings, spec, say=say, out=out / f"e2e-{rate}")
            runs[rate] = (bare, result, verify(settings, result, say=say))
        floor_figures, result, verification = runs[RATE]
        e2e = result.summary["endpoints"].get(DELIVER, {})
        low_floor, low_result, low_verification = runs[LOW_RATE]
        low = low_result.summary["endpoints"].get(DELIVER, {})
        gateway = state.components["messaging-gateway-1"]
        base_url = f"http://{settings.host}:{state.ports['messaging']}"
        say(f"idle connections: {IDLE:,} on {gateway.name} ...")
        idle = rss_per_connection(base_url, gateway.url, gateway.pid, IDLE, say=say)
        say(f"fan-out: one sender at {FANOUT_RATE}/s into a {MEMBERS:,}-member group on {gateway.name} ...")
        fanout = asyncio.run(_gateway_fanout(base_url, gateway.url, FANOUT_SECONDS))
        say("fan-out ceiling: a bare websockets.broadcast() server, the same way ...")
        bare = asyncio.run(_bare_fanout(settings.host, out, FANOUT_SECONDS))
    finally:
        down(settings)
    e2e_p99 = e2e.get("p99_ms")
    summary = {
        "machine": machine_spec(), "command": invoked_command(), "duration_s": seconds,
        "e2e_rate": RATE, "e2e_p50_ms": e2e.get("p50_ms"), "e2e_p99_ms": e2e_p99,
        "e2e_achieved_rps": result.summary["achieved_rps"],
        "e2e_deliveries_per_message": deliveries_figure(result.summary),
        "e2e_checks_passed": all(c.passed for c in verification.checks + low_verification.checks),
        "generator_cpu_avg": result.summary["generator_cpu_avg"],
        **floor_figures,
        "e2e_over_floor": round(e2e_p99 / floor_figures["floor_p99_ms"], 2) if e2e_p99 else None,
        "low_rate": LOW_RATE, "low_e2e_p50_ms": low.get("p50_ms"), "low_e2e_p99_ms": low.get("p99_ms"),
        "low_floor_p99_ms": low_floor["floor_p99_ms"],
        "low_e2e_over_floor": round(low["p99_ms"] / low_floor["floor_p99_ms"], 2) if low.get("p99_ms") else None,
        # What one message costs at the e2e rate (all processes, PostgreSQL statements on every server),
        # and the stack at rest before that run.
        **_cost_figures(result.summary.get("cost_per_op")),
        "tables": result.summary.get("tables"),  # every PostgreSQL table after the end-to-end run
        "kib_per_idle_connection": idle["kib_per_idle_connection"], "connections_held": idle["connections_held"],
        "fanout_offered_per_s": FANOUT_RATE * MEMBERS,
        "fanout_deliveries_per_s": round(fanout), "bare_broadcast_deliveries_per_s": round(bare),
        "fanout_ratio": round(fanout / bare, 3) if bare else None,
        "goals": {"message_pg_statements": "<= 3", "message_core_ms": "<= 2.5", "idle_cores": "<= 0.05",
                  "idle_pg_statements_per_s": "<= 10", "e2e_over_floor": "<= 1.5", "low_e2e_over_floor": "(<= 1.5, below the knee)", "kib_per_idle_connection": "<= 20", "connections_held": ">= 10000",
                  "fanout_ratio": ">= 0.5"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out, summary

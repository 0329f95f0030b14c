"""Messaging's experiments: each an interview trade-off, measured. Run: ``sdlab experiment NAME``.

Every run ends with the per-conversation checks of :mod:`loadtests.messaging.checks` (nothing
acknowledged lost or stored twice, seqs contiguous, every reader got every message once and
in order); the engine adds them to each experiment's verdict.
"""

from __future__ import annotations

from loadtests.messaging.analysis import (
    endpoint, fault_window, longest_silence, loss, median_p99, ms, peak_rss, rss_per_connection, worst_second_p99,
)
from loadtests.messaging.samples import ACK, DELIVER, DELIVER_SLOW, RECONNECT
from services.lab.capacity import capacity_experiment
from services.lab.experiment import Check, Experiment, Outcome, Variant, VariantResult
from services.lab.load import LoadSpec

BASE = LoadSpec(design="messaging", generator="script", rate=200, duration_s=30, seed_count=200)


def _p99(r: VariantResult, name: str = DELIVER) -> float:
    return endpoint(r, name)["p99_ms"] or 0.0


# --- 1. capacity ---------------------------------------------------------------------------------

# Pairs only, so a message is two deliveries and the rate means one thing (fan-out has its own
# experiment). A chat message seen within 100 ms reads as instant.
CAPACITY = capacity_experiment(
    design="messaging",
    load=LoadSpec(design="messaging", generator="script", rate=50, duration_s=10, seed_count=400,
                  options={"group_share": "0"}),
    question="How many messages/s (pairs) can two gateways take before delivery p99 passes 100 ms?",
    slo_p99_ms=100.0,
    rates=(50, 100, 150, 200, 300, 400, 600, 800, 1000, 1200, 1500, 2000),
)


# --- 2. fan-out ----------------------------------------------------------------------------------

GROUPS = (2, 10, 100, 1000)


def _fanout(results: dict[str, VariantResult]) -> Outcome:
    rows = {size: results[f"group of {size}"] for size in GROUPS}
    per_s = {size: endpoint(r, DELIVER)["rps"] for size, r in rows.items()}
    checks = [Check(f"group of {size}: deliveries/s about members x messages/s",
                    per_s[size] >= 0.8 * size * r.summary["achieved_rps"],
                    f"{per_s[size]:,.0f}/s for {r.summary['achieved_rps']:.0f} msg/s")
              for size, r in rows.items()]
    small, big = rows[GROUPS[0]], rows[GROUPS[-1]]
    claim = (f"One sender at {small.summary['offered']}: a pair took {per_s[GROUPS[0]]:,.0f} deliveries/s at p99 "
             f"{ms(_p99(small))}; a {GROUPS[-1]:,}-member group {per_s[GROUPS[-1]]:,.0f} deliveries/s at p99 "
             f"{ms(_p99(big))}: the same message rate costs {GROUPS[-1] // GROUPS[0]}x the deliveries.")
    facts = {f"group of {size}": f"{per_s[size]:,.0f} deliveries/s, delivery p50 {ms(endpoint(r, DELIVER)['p50_ms'])}, "
             f"p99 {ms(_p99(r))}" for size, r in rows.items()}
    return Outcome(checks, claim, facts)


FANOUT = Experiment(
    name="messaging.fanout",
    title="one sender into groups of 2, 10, 100 and 1,000 members",
    question="What does a message to a big group cost (the celebrity group), in deliveries/s and latency?",
    load=LoadSpec(design="messaging", generator="script", rate=10, duration_s=20, seed_count=1000,
                  options={"group_sizes": ",".join(map(str, GROUPS))}),
    variants=[Variant(f"group of {size}", same_stack=size != GROUPS[0],
                      load={"options": {"group_sizes": ",".join(map(str, GROUPS)), "into_group": str(size)}})
              for size in GROUPS],
    evaluate=_fanout,
    columns=[("deliveries/s", lambda r: f"{endpoint(r, DELIVER)['rps']:,.0f}"),
             ("delivery p99", lambda r: ms(_p99(r)))],
)


# --- 3. gateway failure --------------------------------------------------------------------------

def _gateway_failure(results: dict[str, VariantResult]) -> Outcome:
    r = results["gateway-1 killed"]
    f = loss(r)
    reconnect = endpoint(r, RECONNECT)
    checks = [
        Check("the fault schedule ran", not r.summary.get("fault_errors") and len(r.summary.get("faults", [])) == 2),
        Check("the kill cut connections, and they came back", (f.get("reconnects") or 0) > 0 and reconnect["requests"] > 0,
              f"{f.get('reconnects', 0)} reconnects, {reconnect['requests']} resumed"),
    ]
    claim = (f"With one of two gateways SIGKILLed mid-run, {f.get('reconnects', 0)} connections reconnected through "
             f"Caddy and resumed (p50 {ms(reconnect['p50_ms'])}, p99 {ms(reconnect['p99_ms'])}); of "
             f"{f.get('acknowledged', 0):,} acknowledged messages {f.get('lost', 0)} were lost, "
             f"{f.get('delivered_twice', 0)} delivered twice and {f.get('out_of_order', 0)} out of order.")
    return Outcome(checks, claim, {"reconnect p50 / p99": f"{ms(reconnect['p50_ms'])} / {ms(reconnect['p99_ms'])}",
                                   "delivery p99": ms(_p99(r))})


GATEWAY_FAILURE = Experiment(
    name="messaging.gateway-failure",
    title="one of two gateways SIGKILLed mid-run",
    question="When a gateway dies, do its users reconnect, and is anything lost, doubled or reordered?",
    load=LoadSpec(design="messaging", generator="script", rate=200, duration_s=30, seed_count=200,
                  faults="at 40% kill messaging-gateway-1; at 70% restart messaging-gateway-1"),
    variants=[Variant("gateway-1 killed")],
    evaluate=_gateway_failure,
    columns=[("reconnect p99", lambda r: ms(endpoint(r, RECONNECT)["p99_ms"])),
             ("lost", lambda r: str(loss(r).get("lost", "-")))],
)


# --- 4. broker restart ---------------------------------------------------------------------------

def _broker_restart(results: dict[str, VariantResult]) -> Outcome:
    facts, checks = {}, []
    for name, r in results.items():
        start, end = fault_window(r.summary, "kafka")
        f = loss(r)
        facts[name] = (f"{f.get('lost', 0)} of {f.get('acknowledged', 0):,} acknowledged lost, "
                       f"{f.get('rejected', 0)} sends refused, delivery silent for {longest_silence(r.load.timeline, start)} s "
                       f"after the kill (broker down {end - start:.0f} s)")
    db, log = results["db-first"], results["log-first"]
    checks.append(Check("db-first: no acknowledged message lost", loss(db).get("lost") == 0,
                        f"{loss(db).get('lost')} lost"))
    checks.append(Check("the fault schedule ran in both", all(not r.summary.get("fault_errors") for r in results.values())))
    # log-first's loss is the measurement (its post-run checks are reported, not required).
    claim = (f"Kafka (Tansu, memory log) killed for {fault_window(db.summary, 'kafka')[1] - fault_window(db.summary, 'kafka')[0]:.0f} s "
             f"and restarted empty: db-first lost {loss(db).get('lost')} of {loss(db).get('acknowledged', 0):,} acknowledged "
             f"messages (the outbox republished, gaps were repaired from PostgreSQL); log-first lost "
             f"{loss(log).get('lost')} of {loss(log).get('acknowledged', 0):,}: acked on the broker's word, not yet "
             f"persisted when its memory went. What db-first costs, over the same runs: send→ack p50 "
             f"{ms(endpoint(db, ACK)['p50_ms'])} against {ms(endpoint(log, ACK)['p50_ms'])}, delivery p50 "
             f"{ms(endpoint(db, DELIVER)['p50_ms'])} against {ms(endpoint(log, DELIVER)['p50_ms'])}.")
    return Outcome(checks, claim, facts)


BROKER_RESTART = Experiment(
    name="messaging.broker-restart",
    title="the Kafka broker killed and restarted (memory log lost), db-first vs log-first",
    question="Where is the source of truth? What does each write path lose when the log is lost?",
    load=LoadSpec(design="messaging", generator="script", rate=200, duration_s=30, seed_count=200,
                  faults="at 35% kill kafka; at 50% restart kafka"),
    variants=[Variant("db-first", app_env={"MESSAGING_WRITE_PATH": "db-first"}),
              Variant("log-first", app_env={"MESSAGING_WRITE_PATH": "log-first"}, checks_measured=True)],
    evaluate=_broker_restart,
    columns=[("lost", lambda r: str(loss(r).get("lost", "-"))), ("refused", lambda r: str(loss(r).get("rejected", "-")))],
)


# --- 5. slow consumer ----------------------------------------------------------------------------

SLOW_OPTIONS = {"group_sizes": "100", "group_share": "0.5", "text_bytes": "2000"}


def _stall(r: VariantResult) -> tuple[float, float]:
    """(start, end) in the run's seconds of the readers' stall: the generator's slow_from and
    slow_until (0.3 and 0.7 of the sending time), counted from the first second with sends."""
    first = min((row["t"] for row in r.load.timeline if row.get("requests")), default=0)
    length = r.summary["spec"]["duration_s"]
    return first + 0.3 * length, first + 0.7 * length


def _slow_consumer(results: dict[str, VariantResult]) -> Outcome:
    base, slow = results["everyone reads"], results["a tenth stop reading"]
    cut = slow.summary["server"].get("ws_slow_disconnects_total", 0.0)
    start, end = _stall(slow)
    p99_base = median_p99(base.load.timeline, *_stall(base)) or 0.0
    p99_slow = median_p99(slow.load.timeline, start, end) or 0.0
    back = worst_second_p99(slow.load.timeline, end, end + 5)
    rss_base, rss_slow = peak_rss(base.load.timeline, "messaging-gateway"), peak_rss(slow.load.timeline, "messaging-gateway")
    checks = [
        Check("slow readers were disconnected by the send-buffer bound", cut > 0, f"{cut:.0f} disconnects (4008)"),
        Check("while they stall, everyone else's delivery p99 unchanged (median second, within 1.5x + 5 ms)",
              p99_slow <= 1.5 * p99_base + 5, f"{ms(p99_slow)} vs {ms(p99_base)}"),
        Check("gateway memory bounded (peak within 64 MiB of the baseline)", rss_slow <= rss_base + 64,
              f"{rss_slow:.0f} MiB vs {rss_base:.0f} MiB"),
    ]
    claim = (f"A tenth of the readers stopped reading for {end - start:.0f} s: the gateways cut {cut:.0f} of their "
             f"connections at the send-buffer bound (close 4008; they resumed later and got everything), everyone "
             f"else's delivery p99 meanwhile was {ms(p99_slow)} against {ms(p99_base)} with everyone reading, and the "
             f"gateways peaked at {rss_slow:.0f} MiB against {rss_base:.0f} MiB. When the stalled readers all came back "
             f"at once, the worst second's p99 for everyone else was {ms(back)}: their resumes replay a backlog each.")
    return Outcome(checks, claim, {"slow readers' delivery p99 (after they resumed)": ms(_p99(slow, DELIVER_SLOW)),
                                   "everyone else, worst second after the stall": ms(back)})


SLOW_CONSUMER = Experiment(
    name="messaging.slow-consumer",
    title="a tenth of the readers stop reading for 40% of the run",
    question="Can one slow client slow down everyone else, or grow the gateway's memory without bound?",
    load=LoadSpec(design="messaging", generator="script", rate=100, duration_s=30, seed_count=200,
                  options=SLOW_OPTIONS),
    variants=[Variant("everyone reads"),
              Variant("a tenth stop reading", load={"options": {**SLOW_OPTIONS, "slow_readers": "0.1"}})],
    evaluate=_slow_consumer,
    columns=[("delivery p99 (readers)", lambda r: ms(_p99(r))),
             ("gateway peak RSS", lambda r: f"{peak_rss(r.load.timeline, 'messaging-gateway'):.0f} MiB")],
)


# --- 6. idle connections -------------------------------------------------------------------------

IDLE_CONNECTIONS = 5000


def _connections_after_load(settings, state, result) -> dict:
    gateway = state.components["messaging-gateway-1"]
    return rss_per_connection(f"http://{settings.host}:{state.ports['messaging']}", gateway.url, gateway.pid,
                              IDLE_CONNECTIONS, say=print)


def _connections(results: dict[str, VariantResult]) -> Outcome:
    off, on = results["compression off"].extra, results["compression on"].extra
    checks = [
        Check(f"held {IDLE_CONNECTIONS:,} idle connections on one gateway, both ways",
              off["connections_held"] == on["connections_held"] == IDLE_CONNECTIONS,
              f"{off['connections_held']:,} / {on['connections_held']:,}"),
        Check("compression off: <= 20 KiB per idle connection", off["kib_per_idle_connection"] <= 20,
              f"{off['kib_per_idle_connection']} KiB"),
        Check("compression on costs more memory", on["kib_per_idle_connection"] > off["kib_per_idle_connection"],
              f"{on['kib_per_idle_connection']} vs {off['kib_per_idle_connection']} KiB"),
    ]
    claim = (f"An idle connection costs the gateway {off['kib_per_idle_connection']} KiB without permessage-deflate "
             f"and {on['kib_per_idle_connection']} KiB with it ({IDLE_CONNECTIONS:,} held; the websockets docs say "
             f"~14 and ~64): 10,000 connections need ~{off['kib_per_idle_connection'] * 10_000 / 1024:.0f} MiB "
             f"or ~{on['kib_per_idle_connection'] * 10_000 / 1024:.0f} MiB.")
    return Outcome(checks, claim, {"compression off": off, "compression on": on})


CONNECTIONS = Experiment(
    name="messaging.connections",
    title="idle connections on one gateway, permessage-deflate off vs on",
    question="What does an idle WebSocket cost in memory, and what does compression add?",
    load=LoadSpec(design="messaging", generator="script", rate=20, duration_s=5, seed_count=20),
    variants=[Variant("compression off", app_env={"MESSAGING_COMPRESSION": "false"}),
              Variant("compression on", app_env={"MESSAGING_COMPRESSION": "true"})],
    evaluate=_connections,
    after_load=_connections_after_load,
    columns=[("KiB per idle connection", lambda r: str(r.extra.get("kib_per_idle_connection", "-")))],
)


# --- 7. ordering through a rebalance -------------------------------------------------------------

def _ordering(results: dict[str, VariantResult]) -> Outcome:
    r = results["persisters 1 -> 3"]
    f = loss(r)
    joined = min((w["end_s"] for w in r.summary.get("fault_windows", []) if w.get("end_s") is not None), default=0.0)
    before = median_p99(r.load.timeline, 3, joined)
    worst = worst_second_p99(r.load.timeline, joined, r.summary["duration_s"])
    checks = [
        Check("the fault schedule ran", not r.summary.get("fault_errors") and len(r.summary.get("faults", [])) == 4),
        Check("per-conversation order never violated", f.get("out_of_order") == 0 and f.get("conversations_with_seq_gaps") == 0,
              f"{f.get('out_of_order')} out of order, {f.get('conversations_with_seq_gaps')} conversations with gaps"),
    ]
    claim = (f"Log-first, the persisting consumer group scaled from 1 to 3 members at {joined:.0f} s (a rebalance "
             f"moved partitions while messages kept coming): no conversation saw a message out of order or a seq gap, "
             f"{f.get('lost', 0)} of {f.get('acknowledged', 0):,} acknowledged messages were lost, and the worst second's "
             f"delivery p99 after the join was {ms(worst)} against {ms(before)} before: the pause a rebalance costs.")
    return Outcome(checks, claim, {"delivery p99 before / worst after the join": f"{ms(before)} / {ms(worst)}",
                                   "send→ack p99": ms(_p99(r, ACK))})


ORDERING = Experiment(
    name="messaging.ordering",
    title="log-first persisters scaled from 1 to 3 mid-run (a consumer-group rebalance)",
    question="Does per-conversation order survive a consumer-group rebalance, and what pause does it cost?",
    # Three workers start; two leave gracefully at once (the group is 1 before the sends begin),
    # and come back mid-run: the scale-up is the measured rebalance.
    load=LoadSpec(design="messaging", generator="script", rate=200, duration_s=30, seed_count=200,
                  faults="at 1% stop messaging-fanout-2; at 1% stop messaging-fanout-3; "
                         "at 50% restart messaging-fanout-2; at 50% restart messaging-fanout-3"),
    variants=[Variant("persisters 1 -> 3", workers=3, app_env={"MESSAGING_WRITE_PATH": "log-first"})],
    evaluate=_ordering,
)

from loadtests.messaging.scale_out import SCALE_OUT  # noqa: E402

EXPERIMENTS = [CAPACITY, FANOUT, GATEWAY_FAILURE, BROKER_RESTART, SLOW_CONSUMER, CONNECTIONS, ORDERING, SCALE_OUT]

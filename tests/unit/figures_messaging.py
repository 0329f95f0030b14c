"""docs/messaging.md's figures and where in their evidence each one is read (see tests/unit/doc_figures.py)."""

from tests.unit.doc_figures import Figure

DOC = "messaging.md"
DELIVER, ACK = 'endpoints["ws send→deliver"]', 'endpoints["ws send→ack"]'
KILLED = 'variants["gateway-1 killed"]'
STALL = 'variants["a tenth stop reading"]'
DB, LOG = 'variants["db-first"]', 'variants["log-first"]'
BEFORE, AFTER = "messaging/cost/before-100", "messaging/cost/after-100"
GW1, GW2 = 'cost_per_op.core_ms["messaging-gateway-1"]', 'cost_per_op.core_ms["messaging-gateway-2"]'


def step(rate: int, again: bool = False) -> str:
    return f'variants["{rate} req-s{" again" if again else ""}"]'


def group(size: int) -> str:
    return f'variants["group of {size}"].{DELIVER}'


FIGURES = [
    # M1: capacity
    Figure(DOC, "M1", "[knee](glossary.md#knee) **300 messages/s** (delivery p50 5.0 ms, p99 40 ms, 0 errors of 3,001", (
        'facts["knee (req/s)"]', f"{step(300)}.p50_ms", f"{step(300)}.p99_ms", f"{step(300)}.failures",
        f"{step(300)}.requests")),
    Figure(DOC, "M1", "200/s: p99 14 ms", (f"{step(200)}.offered_rps", f"{step(200)}.p99_ms")),
    Figure(DOC, "M1", "At 400/s p99 109 then 539 ms", (f"{step(400)}.offered_rps", f"{step(400)}.p99_ms",
                                                       f"{step(400, True)}.p99_ms")),
    Figure(DOC, "M1", "at 600/s", (f"{step(600)}.offered_rps",)),
    Figure(DOC, "M1", "6.8-28.3 s", (f"{step(600)}.p99_ms", f"{step(600, True)}.p99_ms"), scale=1e-3),
    Figure(DOC, "M1", "the median still 5-14 ms", (f"{step(400)}.p50_ms", f"{step(600, True)}.p50_ms")),
    Figure(DOC, "M1", "a message costs 1.0 statement and ~3.8-4.4 core-ms", (
        f"{step(300)}.cost_per_op.pg_statements", f"{step(400)}.cost_per_op.core_ms_total",
        f"{step(300)}.cost_per_op.core_ms_total")),
    Figure(DOC, "M1", "carries 1,000/s with a p99 of 103 ms (M8)", ("e2e_rate", "e2e_p99_ms"), "messaging/bench",
           where="The same stack fresh carries"),
    # M2: fan-out
    Figure(DOC, "M2", "deliveries/s **20 / 100 / 1,005 / 10,050**", (
        f"{group(2)}.rps", f"{group(10)}.rps", f"{group(100)}.rps", f"{group(1000)}.rps")),
    Figure(DOC, "M2", "delivery p99 **16.5 / 14.8 / 27.2 / 178 ms**", (
        f"{group(2)}.p99_ms", f"{group(10)}.p99_ms", f"{group(100)}.p99_ms", f"{group(1000)}.p99_ms")),
    # M3: a gateway killed
    Figure(DOC, "M3", "**100** connections reconnected", (f'{KILLED}.endpoints["ws reconnect"].requests',)),
    Figure(DOC, "M3", "reconnect p50 **401 ms**", (f'{KILLED}.endpoints["ws reconnect"].p50_ms',)),
    Figure(DOC, "M3", "p99 **0.4 s**", (f'{KILLED}.endpoints["ws reconnect"].p99_ms',), scale=1e-3),
    Figure(DOC, "M3", "of 6,000 acknowledged messages **0 lost, 0 delivered twice, 0 out of order** (44,540 deliveries", (
        f"{KILLED}.loss.acknowledged", f"{KILLED}.loss.lost", f"{KILLED}.loss.delivered_twice",
        f"{KILLED}.loss.out_of_order", f"{KILLED}.loss.delivered")),
    # M4: the broker restarted empty
    Figure(DOC, "M4", "db-first: **0 of 6,000** acknowledged lost, 0 refused", (
        f"{DB}.loss.lost", f"{DB}.loss.acknowledged", f"{DB}.failures")),
    Figure(DOC, "M4", "log-first: **289 of 5,351** lost", (f"{LOG}.loss.lost", f"{LOG}.loss.acknowledged")),
    Figure(DOC, "M4", "649 refused", (f"{LOG}.failures",)),
    Figure(DOC, "M4", "Deliveries went silent for 0 s (db-first) and 9 s", ('facts["db-first"]#3', 'facts["log-first"]#3')),
    Figure(DOC, "M4", "send→ack p50 **3.3 vs 4.1 ms**", (f"{LOG}.{ACK}.p50_ms", f"{DB}.{ACK}.p50_ms")),
    Figure(DOC, "M4", "(p50 **34 vs 11 ms**", (f"{LOG}.{DELIVER}.p50_ms", f"{DB}.{DELIVER}.p50_ms")),
    Figure(DOC, "M4", "send→ack p50\n  4 ms against 3 ms", (f"{DB}.{ACK}.p50_ms", f"{LOG}.{ACK}.p50_ms"),
           "messaging/broker-restart"),
    Figure(DOC, "M4", "(289 messages", (f"{LOG}.loss.lost",), "messaging/broker-restart"),
    # M5: slow readers
    Figure(DOC, "M5", "the gateways cut **13** connections", (f'{STALL}.endpoints["ws reconnect"].requests',)),
    Figure(DOC, "M5", "**19 ms vs 39 ms**", ("claim#3", "claim#4")),
    Figure(DOC, "M5", "**154 vs 147 MiB**", ("claim#5", "claim#6")),
    Figure(DOC, "M5", "reached **2.5 s**", ('facts["everyone else, worst second after the stall"]#0',), scale=1e-3),
    # M6: idle connections
    Figure(DOC, "M6", "**16.5 KiB** vs **48.6 KiB** per connection (5,000 held", (
        'facts["compression off"].kib_per_idle_connection', 'facts["compression on"].kib_per_idle_connection',
        'facts["compression off"].connections_held')),
    Figure(DOC, "M6", "At 16.5 KiB each", ('facts["compression off"].kib_per_idle_connection',), "messaging/connections"),
    Figure(DOC, "M6", "16 KiB each means ~160 MiB for 10,000", ('facts["compression off"].kib_per_idle_connection',
                                                               "claim#6", "claim#5"), "messaging/connections"),
    # M7: a rebalance
    Figure(DOC, "M7", "**0** out of order, **0** seq gaps, **0 of 6,000** lost", (
        'variants["persisters 1 -> 3"].loss.out_of_order', 'variants["persisters 1 -> 3"].loss.conversations_with_seq_gaps',
        'variants["persisters 1 -> 3"].loss.lost', 'variants["persisters 1 -> 3"].loss.acknowledged')),
    Figure(DOC, "M7", "**20 s**", ('facts["delivery p99 before / worst after the join"]#1',), scale=1e-3),
    Figure(DOC, "M7", "against 26 ms before", ('facts["delivery p99 before / worst after the join"]#0',)),
    # M8: the bench
    Figure(DOC, "M8", "10,000 held** on one gateway at **15.3 KiB** each", ("connections_held", "kib_per_idle_connection")),
    Figure(DOC, "M8", "achieved 1,000/s, delivery p50 **19.5 ms**, p99 **102.8 ms** against a floor of **87.5 ms**", (
        "e2e_achieved_rps", "e2e_p50_ms", "e2e_p99_ms", "floor_p99_ms")),
    Figure(DOC, "M8", "insert-commit p99 24.9 ms + a bare Kafka hop p99 62.5 ms", ("postgres_commit_p99_ms", "kafka_hop_p99_ms")),
    Figure(DOC, "M8", "**1.18×, goal ≤ 1.5×", ("e2e_over_floor", 'goals["e2e_over_floor"]#0')),
    Figure(DOC, "M8", "At 100 messages/s: p99 8.3 ms against a floor of 10.5 ms (0.80×", (
        "low_rate", "low_e2e_p99_ms", "low_floor_p99_ms", "low_e2e_over_floor")),
    Figure(DOC, "M8", "A message costs **1.01 statements** and **1.56 core-ms** (Tansu 0.32, the two gateways 0.45 each", (
        "message_pg_statements", "message_core_ms", "message_core_ms_by_component.kafka",
        'message_core_ms_by_component["messaging-gateway-1"]')),
    Figure(DOC, "M8", "PostgreSQL ~0.3, Caddy 0.11); at rest the stack uses 0.03 cores and 1 statement/s", (
        'message_core_ms_by_component["postgres-0"]', "message_core_ms_by_component.caddy", "idle_cores",
        "idle_pg_statements_per_s")),
    Figure(DOC, "M8", "**81,138** deliveries/s against **170,562**", ("fanout_deliveries_per_s",
                                                                      "bare_broadcast_deliveries_per_s")),
    Figure(DOC, "M8", "**0.48×** (goal ≥ 0.5", ("fanout_ratio", 'goals["fanout_ratio"]#0')),
    Figure(DOC, "M8", "~0.8 of the 1.56 core-ms", (
        'message_core_ms_by_component["messaging-gateway-1"] + message_core_ms_by_component["messaging-gateway-2"]',
        "message_core_ms"), "messaging/bench"),
    Figure(DOC, "M8", "a p99 of 103 ms", ("e2e_p99_ms",), "messaging/bench"),
    Figure(DOC, "M8", "(0.818 core-ms a message", ('message_core_ms_by_component["messaging-gateway-1"]'
                                                  ' + message_core_ms_by_component["messaging-gateway-2"]',),
           "messaging/bench"),
    Figure(DOC, "M8", "the bench's 15.3 KiB", ("kib_per_idle_connection",), "messaging/bench"),
    Figure(DOC, "M8", "÷ the 10,000 the", ("connections_held",), "messaging/bench"),
    Figure(DOC, "M8", "at 0.324 core-ms a message", ("message_core_ms_by_component.kafka",), "messaging/bench"),
    Figure(DOC, "M8", "primaries at\n0.263 core-ms", ('message_core_ms_by_component["postgres-0"]'
                                                      ' + message_core_ms_by_component["postgres-1"]',), "messaging/bench"),
    # M9: fan-out workers on a 0.03-core budget
    Figure(DOC, "M9", "**61 / 110 / 234 delivered messages/s**", (
        "scaling.points[0].throughput", "scaling.points[1].throughput", "scaling.points[2].throughput")),
    Figure(DOC, "M9", "efficiency **0.90 at N=2, 0.96 at N=4**", (
        'scaling.efficiency["2"]', "scaling.points[1].n", 'scaling.efficiency["4"]', "scaling.points[2].n")),
    Figure(DOC, "M9", "the machine 18 / 59 / 77% busy", (
        "scaling.points[0].machine_cpu_pct", "scaling.points[1].machine_cpu_pct", "scaling.points[2].machine_cpu_pct")),
    Figure(DOC, "M9", "0 of 12,381 acknowledged", (
        'variants["4 fan-out workers"].loss.lost',
        'variants["1 fan-out worker"].loss.acknowledged + variants["2 fan-out workers"].loss.acknowledged'
        ' + variants["4 fan-out workers"].loss.acknowledged')),
    Figure(DOC, "M9", "Lifting each worker to 0.25 core: **973/s**, and the machine is the wall (99%)", (
        'variants["4 fan-out workers, budget lifted"].budgets["messaging-fanout-1"]', 'facts["budget lifted"]#0',
        'facts["budget lifted"]#1')),
    Figure(DOC, "M9", "(0.19 → 0.37)", (
        'variants["1 fan-out worker"].cost_per_op.core_ms["messaging-fanout-1"]',
        'variants["4 fan-out workers"].cost_per_op.core_ms["messaging-fanout-1"]'
        ' + variants["4 fan-out workers"].cost_per_op.core_ms["messaging-fanout-2"]'
        ' + variants["4 fan-out workers"].cost_per_op.core_ms["messaging-fanout-3"]'
        ' + variants["4 fan-out workers"].cost_per_op.core_ms["messaging-fanout-4"]')),
    Figure(DOC, "M9", "workers deliver 61, 110 and 234 messages/s", (
        "scaling.points[0].throughput", "scaling.points[1].throughput", "scaling.points[2].throughput"),
        "messaging/scale-out"),
    # M10: failover
    Figure(DOC, "M10", "**0 of 2,986** (async) and **0 of 3,122** (sync)", (
        "variants.async.loss.lost", "variants.async.loss.acknowledged", "variants.sync.loss.lost",
        "variants.sync.loss.acknowledged")),
    Figure(DOC, "M10", "deliveries silent **19 s**", ("facts.async#4",)),
    Figure(DOC, "M10", "**2,015 / 1,879** sends refused", ("facts.async#3", "facts.sync#3")),
    Figure(DOC, "M10", "send→ack p50 **3.0 → 3.0 ms**, p99 **11.2 → 8.2 ms**", (
        f"variants.async.{ACK}.p50_ms", f"variants.sync.{ACK}.p50_ms", f"variants.async.{ACK}.p99_ms",
        f"variants.sync.{ACK}.p99_ms")),
    Figure(DOC, "M10", "added ~0.0 ms to the send→ack p50", (f"variants.sync.{ACK}.p50_ms - variants.async.{ACK}.p50_ms",),
           "messaging/failover"),
    # C1, C2 and M8: one message's cost before and after the lean path
    Figure(DOC, "C1", "| PostgreSQL statements | **16.6** |", ("cost_per_op.pg_statements",), BEFORE,
           where="| PostgreSQL statements |"),
    Figure(DOC, "C2", "| **1.1** |", ("cost_per_op.pg_statements",), AFTER, where="| PostgreSQL statements |"),
    Figure(DOC, "M8", "| **1.0** |", ("message_pg_statements",), "messaging/bench", where="| PostgreSQL statements |"),
    Figure(DOC, "C1", "every process | 7.7 |", ("cost_per_op.core_ms_total",), BEFORE, where="every process |"),
    Figure(DOC, "C2", "| 3.9 |", ("cost_per_op.core_ms_total",), AFTER, where="every process |"),
    Figure(DOC, "M8", "| **1.6** |", ("message_core_ms",), "messaging/bench", where="every process |"),
    Figure(DOC, "C1", "(Tansu) | 2.4 |", ("cost_per_op.core_ms.kafka",), BEFORE, where="| of which the broker"),
    Figure(DOC, "C2", "| 1.3 |", ("cost_per_op.core_ms.kafka",), AFTER, where="| of which the broker"),
    Figure(DOC, "M8", "| 0.3 |", ("message_core_ms_by_component.kafka",), "messaging/bench", where="| of which the broker"),
    Figure(DOC, "C1", "gateways | 1.9 |", (f"{GW1} + {GW2}",), BEFORE, where="| of which the gateways |"),
    Figure(DOC, "C2", "| 1.9 |", (f"{GW1} + {GW2}",), AFTER, where="| of which the gateways |"),
    Figure(DOC, "M8", "| 0.8 |", ('message_core_ms_by_component["messaging-gateway-1"]'
                                  ' + message_core_ms_by_component["messaging-gateway-2"]',), "messaging/bench",
           where="| of which the gateways |"),
    Figure(DOC, "C1", "(relay) | 1.9 |", ('cost_per_op.core_ms["messaging-fanout-1"]',), BEFORE, where="| of which the fan-out"),
    Figure(DOC, "C2", "| 0.0 |", ('cost_per_op.core_ms["messaging-fanout-1"]',), AFTER, where="| of which the fan-out"),
    Figure(DOC, "C1", "PostgreSQL | 1.0 |", ('cost_per_op.core_ms["postgres-0"]',), BEFORE, where="| of which PostgreSQL |"),
    Figure(DOC, "C2", "| 0.3 |", ('cost_per_op.core_ms["postgres-0"]',), AFTER, where="| of which PostgreSQL |"),
    Figure(DOC, "M8", "| 0.3 |", ('message_core_ms_by_component["postgres-0"]',), "messaging/bench",
           where="| of which PostgreSQL |"),
    Figure(DOC, "M8", "| 0.0 |", ('message_core_ms_by_component["messaging-fanout-1"]',), "messaging/bench",
           where="| of which the fan-out"),
    Figure(DOC, "C1", "| 0.15, 31 |", ("cost_per_op.idle.cores", "cost_per_op.idle.pg_statements_per_s"), BEFORE,
           where="| the stack at rest: cores"),
    Figure(DOC, "C2", "| **0.01**, 1 |", ("cost_per_op.idle.cores", "cost_per_op.idle.pg_statements_per_s"), AFTER,
           where="| the stack at rest: cores"),
    Figure(DOC, "M8", "| 0.03, 1 |", ("idle_cores", "idle_pg_statements_per_s"), "messaging/bench",
           where="| the stack at rest: cores"),
]

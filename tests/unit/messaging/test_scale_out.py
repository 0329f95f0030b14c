"""messaging.scale-out: what the experiment runs, and what it reads from a run."""

from __future__ import annotations

from loadtests.messaging import scale_out
from loadtests.messaging.experiments import EXPERIMENTS
from loadtests.messaging.samples import ACK, DELIVER


def _row(t: int, acks: int, deliveries: int) -> dict:
    return {"t": t, "by_name": {ACK: [acks, 0, 1.0, 1.0, 1.0], DELIVER: [deliveries, 0, 1.0, 1.0, 1.0]}}


def test_throughput_counts_messages_delivered_over_the_seconds_the_sends_ran_after_the_warmup():
    connecting = [{"t": t, "by_name": {}} for t in range(4)]
    sends = [_row(t, 100, 160 if t < 4 + scale_out.WARMUP_S else 200) for t in range(4, 20)]
    drain = [_row(20, 0, 400)]
    rows = connecting + sends + drain
    window = scale_out.sending(rows)
    assert [r["t"] for r in window] == list(range(4 + scale_out.WARMUP_S, 19))  # the last second is partial
    assert scale_out.delivered_per_s(rows) == 100.0  # 200 deliveries a second, two per message
    assert scale_out.delivered_per_s(connecting) == 0.0 and scale_out.sending(connecting) == []


def test_the_experiment_scales_log_first_fanout_workers_each_budgeted_and_offered_more_than_they_carry():
    assert scale_out.SCALE_OUT in EXPERIMENTS
    exp = scale_out.SCALE_OUT
    assert [v.name for v in exp.variants] == ["1 fan-out worker", "2 fan-out workers", "4 fan-out workers",
                                              "4 fan-out workers, budget lifted"]
    for v, n in zip(exp.variants, (*scale_out.WORKERS, 4)):
        assert v.workers == n and v.app_env["MESSAGING_WRITE_PATH"] == "log-first"
        assert v.load == {"max_vus": n * scale_out.IN_FLIGHT_PER_WORKER}
    assert [v.budgets for v in exp.variants] == [{"messaging-fanout": scale_out.WORKER_BUDGET}] * 3 + [
        {"messaging-fanout": scale_out.LIFTED_BUDGET}]
    # Open loop: offered more than four workers carry, even with the lifted budget.
    lifted = scale_out.LIFTED_BUDGET / scale_out.WORKER_BUDGET
    assert exp.load.rate > 4 * scale_out.CARRIED_PER_WORKER * lifted
    assert exp.load.generator == "script" and exp.load.options["group_share"] == "0"  # pairs: two deliveries each
    # The sent topic has a partition for every worker of the largest variant, or one would idle.
    from messaging.config import MessagingSettings
    assert MessagingSettings().sent_partitions >= max(scale_out.WORKERS)

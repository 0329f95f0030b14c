"""``shortener.read-your-writes``: create a link, read it back at once, three ways.

One streaming replica (async) takes the link-stats reads. Every create is read back the moment its
201 arrives: from the replica with no promise (the read is as stale as the replica's lag: a 404 is
a read that did not see its own write), with the create's ``X-Commit-LSN`` (the replica waits until
it has replayed that far, else the primary answers), or from the primary. The replica runs on a
small CPU budget, like a smaller replica machine, so that it falls behind under the write load as
replicas do, instead of replaying within the microseconds of a loopback hop.
"""

from __future__ import annotations

from services.lab.analysis import endpoint, pct, read_jsonl
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec

READ_BACK = "read-back after create"  # the endpoint name load.k6.js gives the read-backs
MODES = {"replica, no token": "stale", "replica, LSN token": "token", "primary": "primary"}
REPLICA_BUDGET = 0.05  # core: the replica's replay and its reads on a small machine


# A read the replica did not answer within the 1 s deadline is a 503: a slow replica keeps its
# reads rather than passing them to the primary (services/clients/read_routing.py), and on 0.05
# core a few of them time out. Counted and reported; anything else failing fails the experiment.
MAX_TIMED_OUT = 0.005  # of a variant's read-backs


def _after_load(settings, state, result) -> dict:
    reads = [r for r in read_jsonl(result.out_dir / "acks.jsonl") if r.get("event") == "read_after_create"]
    return {"reads": len(reads), "stale": sum(r["status"] == 404 for r in reads),
            "timed_out": sum(r["status"] == 503 for r in reads),
            "failed": sum(r["status"] not in (200, 404, 503) for r in reads),
            "with_token": sum(bool(r.get("token")) for r in reads)}


def stale_share(r: VariantResult) -> float | None:
    return r.extra["stale"] / r.extra["reads"] if r.extra.get("reads") else None


def routed(r: VariantResult, served_by: str, reason: str) -> float:
    return r.summary["server"].get(f"db_routed_reads_total{{reason={reason},served_by={served_by}}}", 0.0)


def _p(r: VariantResult, q: str) -> float:
    return endpoint(r, READ_BACK)[f"{q}_ms"] or 0.0


def evaluate(results: dict[str, VariantResult]) -> Outcome:
    stale, token, primary = (results[name] for name in MODES)
    replica_served = routed(token, "replica", "stale_ok")
    behind = routed(token, "primary", "replica_behind")
    checks = [
        Check("every variant read back what it created", all(r.extra.get("reads", 0) > 0 for r in results.values()),
              ", ".join(f"{n}: {r.extra.get('reads', 0):,}" for n, r in results.items())),
        Check("no read failed (a 404 counts as stale, a 503 as timed out, anything else as failed)",
              all(r.extra.get("failed", 1) == 0 for r in results.values()),
              ", ".join(f"{n}: {r.extra.get('failed')}" for n, r in results.items())),
        Check(f"reads timed out (503) below {MAX_TIMED_OUT:.1%} in every variant",
              all(r.extra.get("timed_out", 0) <= MAX_TIMED_OUT * r.extra.get("reads", 0) for r in results.values()),
              ", ".join(f"{n}: {r.extra.get('timed_out', 0)}" for n, r in results.items())),
        Check("with the LSN token: 0 stale reads", token.extra.get("stale") == 0 and token.extra["with_token"] > 0,
              f"{token.extra.get('stale')} of {token.extra.get('reads'):,}"),
        Check("from the primary: 0 stale reads", primary.extra.get("stale") == 0, f"{primary.extra.get('stale')}"),
        Check("with the LSN token the replica still served reads", replica_served > 0,
              f"{replica_served:,.0f} on the replica, {behind:,.0f} sent to the primary because it was behind"),
    ]
    share = stale_share(stale)
    claim = (f"Reading a link back the moment its create was acknowledged, with one async replica on "
             f"{REPLICA_BUDGET:g} core: from the replica with no promise {pct(share, 2)} of reads were stale "
             f"({stale.extra['stale']:,} of {stale.extra['reads']:,} answered 404, {stale.extra.get('timed_out', 0)} "
             f"timed out), p50/p99 {_p(stale, 'p50'):.1f}/"
             f"{_p(stale, 'p99'):.0f} ms; with the create's LSN token 0 stale ({token.extra.get('timed_out', 0)} timed "
             f"out), p50/p99 {_p(token, 'p50'):.1f}/"
             f"{_p(token, 'p99'):.0f} ms ({replica_served:,.0f} served by the replica, {behind:,.0f} by the primary "
             f"because the replica was behind); from the primary 0 stale, p50/p99 {_p(primary, 'p50'):.1f}/"
             f"{_p(primary, 'p99'):.0f} ms.")
    facts = {f"{n}: stale reads": f"{r.extra.get('stale', 0):,} of {r.extra.get('reads', 0):,} ({pct(stale_share(r), 2)})"
             for n, r in results.items()}
    facts["LSN token: served by the replica / by the primary (replica behind)"] = f"{replica_served:,.0f} / {behind:,.0f}"
    return Outcome(checks, claim, facts, record={"read_back": {
        n: {"reads": r.extra.get("reads"), "stale": r.extra.get("stale"), "timed_out": r.extra.get("timed_out"),
            "p50_ms": _p(r, "p50"),
            "p99_ms": _p(r, "p99")} for n, r in results.items()}})


def charts(out, results: dict[str, VariantResult]):
    from services.lab.report.charts import bar_chart

    return [
        bar_chart({n: 100 * (stale_share(r) or 0.0) for n, r in results.items()}, out / "read_your_writes_stale.png",
                  "shortener.read-your-writes: reads that missed their own create", "stale reads (% of read-backs)"),
        bar_chart({n: _p(r, "p99") for n, r in results.items()}, out / "read_your_writes_p99.png",
                  "shortener.read-your-writes: read-back latency", "read-back p99 (ms)"),
    ]


READ_YOUR_WRITES = Experiment(
    name="shortener.read-your-writes",
    title="read a create back at once: replica, replica with the LSN token, primary",
    question="A user creates a link and opens its stats at once: how often does a replica answer 'no such link', "
             "and what does each way of avoiding it cost?",
    load=LoadSpec(design="shortener", generator="k6", rate=150, duration_s=20, read_weight=0, write_weight=1),
    variants=[Variant(name, replicas=1, replication="async", budgets={"postgres-0-1": REPLICA_BUDGET},
                      load={"options": {"read_after_create": mode}}, same_stack=i > 0)
              for i, (name, mode) in enumerate(MODES.items())],
    evaluate=evaluate,
    after_load=_after_load,
    charts=charts,
    columns=[("stale reads", lambda r: pct(stale_share(r), 2)),
             ("read-back p50 / p99", lambda r: f"{_p(r, 'p50'):.1f} / {_p(r, 'p99'):.0f} ms")],
)

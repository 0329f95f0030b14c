"""``shop.scatter-gather``: what a listing costs as it fans out over 1, 2 and 4 shards, and when one is slow.

A listing by category has no shard key, so it asks every shard and waits for the slowest: its
latency is the maximum of N, and the tail of a maximum grows with N. A slow shard is made for real:
the engine's ``throttle`` chaos action stops its PostgreSQL server (SIGSTOP) 400 ms of every
500 ms (a starved or stalling server: nothing is injected into the app). With the per-shard
deadline (``SHOP_SCATTER_DEADLINE_S``, 0.25 s) the page comes back without that shard's rows,
marked ``partial``; without it (0: wait for every shard) the page waits for the slow shard.
"""

from __future__ import annotations

from pathlib import Path

from loadtests.shop import analysis as a
from services.lab.analysis import fault_window, ms, pct, read_jsonl
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec

DEADLINE_S = 0.25
SLOW, DUTY = "postgres-1", "400/500"
THROTTLE = f"at 5% throttle {SLOW} {DUTY}; at 95% resume {SLOW}"
# Over the per-shard deadline, allowed to a whole listing: the merge and the balancer's two hops.
DEADLINE_SLACK_S = 0.15
HEALTHY_PARTIAL = 0.01  # partial answers allowed with every shard healthy (a stall of the shared machine)
FANOUT = ("1 shard", "2 shards", "4 shards")
# Both on 4 shards, postgres-1 throttled (names without commas: they name the runs' folders).
SLOW_DEADLINE, SLOW_NO_DEADLINE = "one slow shard with deadline", "one slow shard without deadline"
WARMUP_S = 2.0


def listing_figures(records: list[dict], summary: dict, component: str = SLOW) -> dict:
    """The listings measured: those started in the throttle window, or after the warm-up without one."""
    window = fault_window(summary, component) or (WARMUP_S, summary["duration_s"])
    rows = a.between(a.listings(records, summary["started_at"]), *window, at=lambda r: r["s"])
    return {"window": [round(window[0], 2), round(window[1], 2)], **a.listing_stats(rows),
            "server_5xx": a.server_errors(summary.get("server", {}))}


def _after_load(settings, state, result) -> dict:
    return listing_figures(read_jsonl(result.out_dir / "acks.jsonl"), result.summary)


def _partial_share(x: dict) -> float:
    return x["partial"] / x["answered"] if x.get("answered") else 0.0


def evaluate(results: dict[str, VariantResult]) -> Outcome:
    x = {name: r.extra for name, r in results.items()}
    fan = [x[n] for n in FANOUT]
    slow, blind = x[SLOW_DEADLINE], x[SLOW_NO_DEADLINE]
    bound_ms = 1000 * (DEADLINE_S + DEADLINE_SLACK_S)
    checks = [
        Check("every variant answered its listings, none with an error (no 5xx)",
              all(v["answered"] > 0 and v["errors"] == 0 and not v["server_5xx"] for v in x.values()),
              "; ".join(f"{n}: {v['answered']} answered, {v['errors']} errors" for n, v in x.items())),
        Check(f"healthy shards: almost no partial answers (< {HEALTHY_PARTIAL:.0%})",
              all(_partial_share(v) < HEALTHY_PARTIAL for v in fan),
              "; ".join(f"{n}: {x[n]['partial']}" for n in FANOUT)),
        Check("one slow shard, no deadline: every page complete, and the slow shard sets the tail (p99 over the deadline)",
              blind["partial"] == 0 and (blind["p99_ms"] or 0) > 1000 * DEADLINE_S,
              f"{blind['partial']} partial, p99 {ms(blind['p99_ms'])}"),
        Check(f"one slow shard, with the deadline: p99 bounded (<= {bound_ms:.0f} ms), paid for in partial pages",
              slow["p99_ms"] is not None and slow["p99_ms"] <= bound_ms and slow["partial"] > 0,
              f"p99 {ms(slow['p99_ms'])}, {slow['partial']} of {slow['answered']} partial"),
        Check("the deadline cut the slow shard's tail", (slow["p99_ms"] or 0) < (blind["p99_ms"] or 0),
              f"{ms(slow['p99_ms'])} vs {ms(blind['p99_ms'])}"),
    ]
    grew = fan[-1]["p99_ms"] is not None and fan[0]["p99_ms"] is not None and fan[-1]["p99_ms"] > fan[0]["p99_ms"]
    claim = (f"Listing p99 with every shard healthy: {ms(fan[0]['p99_ms'])} over 1 shard, {ms(fan[1]['p99_ms'])} over 2, "
             f"{ms(fan[2]['p99_ms'])} over 4 (p50 {ms(fan[0]['p50_ms'])}, {ms(fan[1]['p50_ms'])}, "
             f"{ms(fan[2]['p50_ms'])}): the tail {'grew' if grew else 'did not grow'} with the fan-out. With one of "
             f"4 shards stopped {DUTY.replace('/', ' ms of every ')} ms, waiting for every shard gave p99 "
             f"{ms(blind['p99_ms'])} and {blind['partial']} partial pages; the {1000 * DEADLINE_S:.0f} ms per-shard "
             f"deadline held p99 at {ms(slow['p99_ms'])}, at the price of {slow['partial']:,} of "
             f"{slow['answered']:,} pages ({pct(_partial_share(slow))}) answered partial, without that shard's rows.")
    facts = {n: f"{v['answered']:,} listings, p50 {ms(v['p50_ms'])}, p99 {ms(v['p99_ms'])}, max {ms(v['max_ms'])}, "
                f"{v['partial']:,} partial ({pct(_partial_share(v))}), measured over run seconds "
                f"{v['window'][0]:.0f}-{v['window'][1]:.0f}" for n, v in x.items()}
    return Outcome(checks, claim, facts)


def charts(out: Path, results: dict[str, VariantResult]) -> list[Path]:
    from services.lab.report.charts import COLORS, legend_outside, log_axis, plt, save

    names = list(results)
    x = [results[n].extra for n in names]
    fig, ax = plt.subplots(figsize=(10, 5))
    pos = range(len(names))
    ax.bar([p - 0.2 for p in pos], [v["p50_ms"] or 0 for v in x], 0.4, color=COLORS[0], label="p50")
    bars = ax.bar([p + 0.2 for p in pos], [v["p99_ms"] or 0 for v in x], 0.4, color=COLORS[1], label="p99")
    for bar, v in zip(bars, x):
        ax.annotate(f"{v['p99_ms'] or 0:,.0f} ms\n{v['partial']:,} partial", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.axhline(1000 * DEADLINE_S, color="grey", ls=":", label=f"per-shard deadline {1000 * DEADLINE_S:.0f} ms")
    ax.set_xticks(list(pos))
    ax.set_xticklabels([n.replace("shard ", "shard\n(of 4) ") if "slow" in n else n for n in names], fontsize=8)
    log_axis(ax)  # healthy pages in ms, a slow shard's in hundreds: two decades
    ax.set_ylim(top=3 * max(v["p99_ms"] or 1 for v in x))  # room for the tallest bar's two lines of text
    ax.set_ylabel("listing latency (ms, open loop, log scale)")
    ax.set_title("shop.scatter-gather: listing latency by fan-out, and with one slow shard")
    legend_outside(ax)
    ax.grid(axis="y", alpha=0.3)
    return [save(fig, out / "scatter-gather.png")]


_DEADLINE = {"SHOP_SCATTER_DEADLINE_S": str(DEADLINE_S)}

SCATTER_GATHER = Experiment(
    name="shop.scatter-gather",
    title="listing latency over 1, 2 and 4 shards, and one slow shard with and without the per-shard deadline",
    question="What does asking every shard cost a listing as the shards multiply, and what does a per-shard "
             "deadline buy when one shard is slow?",
    load=LoadSpec(design="shop", generator="k6", rate=40, duration_s=20, seed_count=200, read_weight=19,
                  write_weight=1, options={"log_listings": "1", "listing_share": "0.9"}),
    variants=[
        Variant("1 shard", shards=1, app_env=_DEADLINE),
        Variant("2 shards", shards=2, app_env=_DEADLINE),
        Variant("4 shards", shards=4, app_env=_DEADLINE),
        Variant(SLOW_DEADLINE, same_stack=True, load={"faults": THROTTLE}),
        Variant(SLOW_NO_DEADLINE, shards=4, app_env={"SHOP_SCATTER_DEADLINE_S": "0"}, load={"faults": THROTTLE}),
    ],
    evaluate=evaluate,
    after_load=_after_load,
    charts=charts,
    columns=[("listing p50", lambda r: ms(r.extra.get("p50_ms"))), ("listing p99", lambda r: ms(r.extra.get("p99_ms"))),
             ("partial", lambda r: f"{r.extra.get('partial', 0):,} of {r.extra.get('answered', 0):,}")],
)

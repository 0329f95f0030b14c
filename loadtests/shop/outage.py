"""``shop.shard-outage``: one of two PostgreSQL shards hangs (SIGSTOP) for a third of a mixed load.

The claim a sharded design makes: a shard's outage is the outage of its users and its products
only. Every checkout is placed on the shards it needs (the buyer's, by the hash of the name; the
product's, by the bucket in its id) from the generator's own log, so the success rate of the
checkouts that never needed the paused shard is measured, not assumed. The others must fail fast
and say why (503 ``shard_unavailable``), never 500; listings must come back ``partial`` within
their per-shard deadline; and once the shard is back, checkouts must succeed again at once.
"""

from __future__ import annotations

import math
from pathlib import Path

from loadtests.shop import analysis as a
from loadtests.shop.checks import part_url
from services.lab.analysis import fault_window, ms, pct, read_jsonl
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec

DOWN, DOWN_SHARD = "postgres-1", 1
DEADLINE_S = 0.25
# Allowed over the per-shard deadline: the other shard's query, the merge, the two hops through
# the balancer, on a shared 2-core machine.
DEADLINE_SLACK_S = 0.25
UP_SUCCESS = 0.99  # checkouts that need no paused shard
RECOVERY_S = 5.0
VARIANT = "postgres-1 paused"
# What a checkout that needs the paused shard may end on: each is an answer with a reason.
HIT_ANSWERS = {"201", "503 shard_unavailable", "409 idempotency_key_in_use"}


def outage_figures(records: list[dict], summary: dict, assignment, down_shard: int = DOWN_SHARD,
                   component: str = DOWN) -> dict:
    """Everything the experiment claims, from the generator's log, the run's summary and the shard map."""
    window = fault_window(summary, component)
    if window is None or "started_at" not in summary:
        return {"error": f"no pause of {component} in this run"}
    start, end = window
    group = a.checkouts(records, summary["started_at"], assignment, ends_at=summary.get("spec", {}).get("duration_s"))
    # Before: started at least two seconds before the pause (not still running into it).
    before, during = a.between(group, 0, start - 2), a.between(group, start, end)
    after = a.between(group, end, math.inf)
    up = [c for c in during if down_shard not in c.shards]
    hit = [c for c in during if down_shard in c.shards]
    baseline = a.success(before)["rate"]
    everything = a.per_second(group)
    rows = a.listings(records, summary["started_at"])
    answers = a.every_answer_status(group)
    client_5xx = {str(s): n for s, n in sorted(answers.items()) if s >= 500 and s != 503}
    client_5xx.update({f"listing {r['status']}": 1 for r in rows if r["status"] >= 500 and r["status"] != 503})
    seconds = range(0, int(summary["duration_s"]))
    listing_by_s = {s: [r for r in rows if math.floor(r["s"]) == s] for s in seconds}
    return {
        "window": [round(start, 2), round(end, 2)],
        "assignment_shards": max(assignment) + 1,
        "before": a.success(before),
        "during_up": a.success(up),
        "during_hit": a.success(hit),
        "after": a.success(after),
        "hit_statuses": dict(a.statuses(hit)),
        "up_statuses": dict(a.statuses(up)),
        "hit_without_message": sum(1 for c in hit if c.status != 201 and not (c.final or {}).get("code")),
        "answer_statuses": {str(k): v for k, v in sorted(answers.items())},
        "client_5xx": client_5xx,
        "server_5xx": a.server_errors(summary.get("server", {})),
        "recovery_s": a.recovery_time(everything, end, baseline or 0.0),
        "listings_during": a.listing_stats(a.between(rows, start, end, at=lambda r: r["s"])),
        "listings_outside": a.listing_stats([r for r in rows if not start <= r["s"] < end]),
        "series": {
            "t": list(seconds),
            "up_rate": [_rate(a.per_second([c for c in group if down_shard not in c.shards]).get(s)) for s in seconds],
            "hit_rate": [_rate(a.per_second([c for c in group if down_shard in c.shards]).get(s)) for s in seconds],
            "listing_p99": [a.listing_stats(listing_by_s[s])["p99_ms"] for s in seconds],
            "partial_share": [_share(listing_by_s[s]) for s in seconds],
        },
    }


def _rate(cell: tuple[int, int] | None) -> float | None:
    return None if not cell else 100.0 * cell[0] / cell[1]


def _share(rows: list[dict]) -> float | None:
    answered = [r for r in rows if r.get("status") == 200]
    return 100.0 * sum(1 for r in answered if r.get("partial")) / len(answered) if answered else None


def _after_load(settings, state, result) -> dict:
    assignment = a.read_shard_map(part_url(state, "postgres-0"))
    return outage_figures(read_jsonl(result.out_dir / "acks.jsonl"), result.summary, assignment)


def evaluate(results: dict[str, VariantResult]) -> Outcome:
    r = results[VARIANT]
    f = r.extra
    if "error" in f:
        return Outcome([Check("the pause ran and the run logged its checkouts", False, f["error"])], f["error"])
    start, end = f["window"]
    up, hit, before = f["during_up"], f["during_hit"], f["before"]
    ld, hs = f["listings_during"], f["hit_statuses"]
    hit_503 = sum(n for s, n in hs.items() if s.startswith("503"))
    hit_late_ok = hs.get("201", 0)
    deadline_ms = 1000 * DEADLINE_S
    held = hs.get("409 idempotency_key_in_use", 0)
    in_use = (f", 409 idempotency_key_in_use ({held}: an attempt the client timed out had claimed the key once the shard "
              f"woke, and its lease was still running)" if held else "")
    checks = [
        Check("the fault schedule ran (pause, then resume)",
              not r.summary.get("fault_errors") and [x["action"] for x in r.summary.get("faults", [])] == ["pause", "resume"],
              str(r.summary.get("fault_errors") or "")),
        Check(f"during the pause, checkouts needing only the other shard succeeded (>= {UP_SUCCESS:.0%})",
              up["checkouts"] > 0 and (up["rate"] or 0) >= UP_SUCCESS,
              f"{up['ok']} of {up['checkouts']} ({pct(up['rate'])}); before the pause {pct(before['rate'])}"),
        Check("checkouts needing the paused shard got 503 shard_unavailable (or, retried after the resume, a 201, "
              "or 409 idempotency_key_in_use while an attempt cut by the pause held the key's lease)",
              hit["checkouts"] > 0 and hit_503 > 0 and set(hs) <= HIT_ANSWERS and f["hit_without_message"] == 0,
              ", ".join(f"{k}: {v}" for k, v in sorted(hs.items()))),
        Check("no 500 anywhere (client answers and the instances' own counts)",
              not f["client_5xx"] and not f["server_5xx"],
              f"client {f['client_5xx'] or 'none'}, server {f['server_5xx'] or 'none'}"),
        Check("listings during the pause came back partial (>= 90% of them)",
              ld["answered"] > 0 and ld["partial"] >= 0.9 * ld["answered"],
              f"{ld['partial']} of {ld['answered']} partial, {ld['errors']} errors"),
        Check(f"listings during the pause within the deadline: p99 <= {deadline_ms:.0f} ms + {1000 * DEADLINE_SLACK_S:.0f} ms",
              ld["p99_ms"] is not None and ld["p99_ms"] <= 1000 * (DEADLINE_S + DEADLINE_SLACK_S),
              f"p99 {ms(ld['p99_ms'])}, max {ms(ld['max_ms'])}"),
        Check(f"checkouts back to >= 95% of their success before the pause within {RECOVERY_S:.0f} s of the resume",
              f["recovery_s"] is not None and f["recovery_s"] <= RECOVERY_S, f"{f['recovery_s']} s"),
    ]
    claim = (f"With {DOWN} (one of {f['assignment_shards']} shards) stopped for {end - start:.0f} s of a "
             f"{r.summary['duration_s']:.0f} s run at {r.summary['offered']}: checkouts whose buyer and product both "
             f"live on the other shard succeeded {pct(up['rate'])} ({up['ok']:,} of {up['checkouts']:,}; "
             f"{pct(before['rate'])} before the pause); the {hit['checkouts']:,} that needed the stopped shard "
             f"ended 503 shard_unavailable ({hit_503:,}){in_use} or, retried after the resume, 201 ({hit_late_ok:,}); "
             f"{sum(f['client_5xx'].values()) + sum(f['server_5xx'].values())} answers were 500 or another 5xx "
             f"but 503. {ld['partial']:,} of {ld['answered']:,} listings during the pause came back partial, p99 "
             f"{ms(ld['p99_ms'])} against the {deadline_ms:.0f} ms per-shard deadline. Checkouts were back to "
             f">= 95% of their earlier success in the first whole second {_seconds(f['recovery_s'])} after the resume "
             f"(1 s resolution).")
    facts = {
        "pause window (run seconds)": f"{start:.1f} to {end:.1f}",
        "checkouts before / during (other shard only) / during (paused shard) / after":
            f"{pct(before['rate'])} of {before['checkouts']:,} / {pct(up['rate'])} of {up['checkouts']:,} / "
            f"{pct(hit['rate'])} of {hit['checkouts']:,} / {pct(f['after']['rate'])} of {f['after']['checkouts']:,}",
        "final answers of checkouts needing the paused shard": hs,
        "every checkout answer, by status (retries included)": f["answer_statuses"],
        "listings during the pause": f"{ld['answered']:,} answered, {ld['partial']:,} partial, p50 {ms(ld['p50_ms'])}, "
                                     f"p99 {ms(ld['p99_ms'])}, max {ms(ld['max_ms'])}",
        "listings outside the pause": (lambda o: f"{o['answered']:,} answered, {o['partial']:,} partial, "
                                                 f"p99 {ms(o['p99_ms'])}")(f["listings_outside"]),
        "recovery after the resume": _seconds(f["recovery_s"]),
    }
    return Outcome(checks, claim, facts)


def _seconds(x: float | None) -> str:
    return "never (within the run)" if x is None else f"{x:.1f} s"


def charts(out: Path, results: dict[str, VariantResult]) -> list[Path]:
    from services.lab.report.charts import COLORS, legend_outside, plt, save

    r = results[VARIANT]
    f = r.extra
    if "series" not in f:
        return []
    s, (start, end) = f["series"], f["window"]
    fig, (ax_ok, ax_lat, ax_part) = plt.subplots(3, 1, figsize=(12, 8.5), sharex=True)
    ax_ok.plot(s["t"], s["up_rate"], "o-", ms=3, color=COLORS[2], label="buyer and product on the other shard")
    ax_ok.plot(s["t"], s["hit_rate"], "o-", ms=3, color=COLORS[1], label=f"needs shard {DOWN_SHARD}")
    ax_ok.set_ylabel("checkouts succeeded (%)\nby the second they started")
    ax_ok.set_ylim(-5, 105)
    ax_lat.plot(s["t"], s["listing_p99"], "o-", ms=3, color=COLORS[0], label="listing p99")
    ax_lat.axhline(1000 * DEADLINE_S, color="grey", ls=":", label=f"per-shard deadline {1000 * DEADLINE_S:.0f} ms")
    ax_lat.set_ylabel("listing p99 latency (ms)\nby the second they started")
    ax_part.plot(s["t"], s["partial_share"], "o-", ms=3, color=COLORS[3], label="listings answered partial")
    ax_part.set_ylabel("listings answered partial (%)\nby the second they started")
    ax_part.set_ylim(-5, 105)
    ax_part.set_xlabel("seconds since load start")
    for ax in (ax_ok, ax_lat, ax_part):
        ax.axvspan(start, end, color="#b2abd2", alpha=0.35, lw=0)
        ax.grid(alpha=0.3)
        legend_outside(ax)  # beside the panel: inside, the lower-left corner held data
    ax_ok.text(start, 50, f" {DOWN} paused", fontsize=8, va="center")  # mid-panel: the lines run at 0 and 100
    fig.suptitle("shop.shard-outage: who keeps checking out, and what listings return")
    return [save(fig, out / "shard-outage.png")]


SHARD_OUTAGE = Experiment(
    name="shop.shard-outage",
    title="one of two PostgreSQL shards paused (SIGSTOP) for a third of the run",
    question="When one shard hangs, who can still check out, what do the others get, what do listings return, "
             "and how fast is it over once the shard is back?",
    load=LoadSpec(design="shop", generator="k6", rate=50, duration_s=30, seed_count=200, read_weight=1, write_weight=1,
                  faults=f"at 33% pause {DOWN}; at 67% resume {DOWN}", max_vus=400,
                  options={"log_listings": "1", "listing_share": "0.5"}),
    variants=[Variant(VARIANT, app_env={"SHOP_SCATTER_DEADLINE_S": str(DEADLINE_S)})],
    evaluate=evaluate,
    after_load=_after_load,
    charts=charts,
    columns=[("ok, other shard, in pause", lambda r: pct(r.extra.get("during_up", {}).get("rate"))),
             ("partial listings", lambda r: str(r.extra.get("listings_during", {}).get("partial", "-"))),
             ("recovery", lambda r: _seconds(r.extra.get("recovery_s")))],
)

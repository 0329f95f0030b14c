"""``shop.shard-scaling``: checkouts/s with 1, 2 and 4 PostgreSQL shards, and where the CPU went.

Sharding buys database capacity: N servers, each with its own cores, should carry close to N
times what one does, as long as the database is what runs out. On a 2-core machine every part
(the shop's instances, the payment stand-in, the balancer, the broker, the generator and every
PostgreSQL server) shares the same cores, so the run measures which part runs out first and what
each checkout costs each part (core-milliseconds, from the per-component CPU of the run), and
projects from those costs what the shards would carry with cores of their own.
"""

from __future__ import annotations

from pathlib import Path

from loadtests.shop import analysis as a
from loadtests.shop.checks import part_url
from services.lab.analysis import ms, read_jsonl
from services.lab.experiment import Check, Experiment, Outcome, Variant, VariantResult
from services.lab.load import LoadSpec

SHARDS = (1, 2, 4)
WARMUP_S, TAIL_S = 3.0, 1.0
MACHINE_FULL = 85.0  # % of every core: the machine ran out of CPU
LINEAR = 0.7  # N shards giving at least 0.7 x N times one shard counts as scaling with the shards
CHECKOUT = "/api/v1/checkout"


def name(shards: int) -> str:
    return f"{shards} shard" + ("s" if shards > 1 else "")


def scaling_figures(records: list[dict], summary: dict, timeline: list[dict], assignment, cores: int) -> dict:
    start, end = WARMUP_S, summary["duration_s"] - TAIL_S
    group = a.checkouts(records, summary["started_at"], assignment)
    per_s = a.created_per_second(group, start, end)
    cpu = a.mean_cpu(timeline, start, end)
    by_group = a.cpu_by_group(cpu)
    costs = a.cost_per_checkout(by_group, per_s)
    shards = max(assignment) + 1
    answers = a.every_answer_status(group)
    return {
        "shards": shards, "cores": cores, "window": [start, end], "checkouts_per_s": per_s,
        "cpu": {k: round(v, 1) for k, v in sorted(cpu.items())},
        "cpu_by_group": {k: round(v, 1) for k, v in sorted(by_group.items())},
        "core_ms_per_checkout": {k: round(v, 2) for k, v in sorted(costs.items())},
        "projection": a.projection(costs, shards, cores=cores),
        "saturation": a.saturated(cpu, cores),
        "machine_cpu": a.mean_machine_cpu(timeline, start, end),
        "answer_statuses": {str(k): v for k, v in sorted(answers.items())},
        "client_5xx": {str(k): v for k, v in answers.items() if k >= 500 and k != 503},
        "server_5xx": a.server_errors(summary.get("server", {})),
    }


def _after_load(settings, state, result) -> dict:
    assignment = a.read_shard_map(part_url(state, "postgres-0"))
    cores = int(result.summary.get("machine", {}).get("cores") or 2)
    return scaling_figures(read_jsonl(result.out_dir / "acks.jsonl"), result.summary, result.timeline, assignment, cores)


def _explained(x1: dict, xn: dict) -> tuple[bool, str]:
    """Whether N shards' throughput is what the bottleneck allows: close to N x one shard, or the
    machine's cores ran out (then no number of shards on these cores can help)."""
    ratio = xn["checkouts_per_s"] / x1["checkouts_per_s"] if x1["checkouts_per_s"] else 0.0
    full = (xn["machine_cpu"] or 0.0) >= MACHINE_FULL
    ok = ratio >= LINEAR * xn["shards"] or full
    why = (f"{ratio:.2f}x one shard; machine CPU {xn['machine_cpu'] or 0:.0f}% of {xn['cores']} cores"
           + (" (ran out)" if full else ""))
    return ok, why


def _busiest(x: dict, n: int = 3) -> str:
    top = sorted(x["cpu_by_group"].items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{k} {v:.0f}%" for k, v in top)


def evaluate(results: dict[str, VariantResult]) -> Outcome:
    x = {n: results[name(n)].extra for n in SHARDS}
    r = {n: results[name(n)] for n in SHARDS}
    one, top = x[SHARDS[0]], x[SHARDS[-1]]
    checks = [
        Check("every shard count carried checkouts, with no 500",
              all(v["checkouts_per_s"] > 0 and not v["client_5xx"] and not v["server_5xx"] for v in x.values()),
              "; ".join(f"{name(n)}: {v['checkouts_per_s']:.0f}/s" for n, v in x.items())),
        Check("offered more than the stack carried (k6 dropped arrivals, or achieved < 90% of offered)",
              all(res.summary.get("dropped_iterations", 0) > 0 or
                  x[n]["checkouts_per_s"] < 0.9 * (res.summary.get("offered_rps") or 0) for n, res in r.items()),
              "; ".join(f"{name(n)}: dropped {res.summary.get('dropped_iterations', 0)}" for n, res in r.items())),
        *[Check(f"{name(n)}: the throughput is what the bottleneck allows (>= {LINEAR} x {n} x one shard, "
                f"or the machine's cores ran out)", *_explained(one, x[n])) for n in SHARDS[1:]],
        Check("PostgreSQL's cost per checkout measured in every variant",
              all(v["core_ms_per_checkout"].get("postgres", 0) > 0 for v in x.values()),
              "; ".join(f"{name(n)}: {v['core_ms_per_checkout'].get('postgres', 0):.1f} core-ms" for n, v in x.items())),
    ]
    p1, pn = one["projection"], top["projection"]
    full = all((v["machine_cpu"] or 0) >= MACHINE_FULL for v in x.values())
    limit = ("the machine's 2 cores ran out first" if full else "the machine's cores did not run out")
    limit = limit.replace("2 cores", f"{one['cores']} cores")
    ratios = ", ".join(f"{name(n)} {x[n]['checkouts_per_s']:.0f}/s ({x[n]['checkouts_per_s'] / one['checkouts_per_s']:.2f}x, "
                       f"p99 {ms(results[name(n)].summary['endpoints'].get(CHECKOUT, {}).get('p99_ms'))})"
                       for n in SHARDS if one["checkouts_per_s"])
    claim = (f"Checkout-only load offered at {r[SHARDS[0]].summary['offered']}: {ratios}. {limit.capitalize()} "
             f"(machine CPU {one['machine_cpu'] or 0:.0f}% / {top['machine_cpu'] or 0:.0f}% with 1 / {top['shards']} "
             f"shards; busiest with 1 shard: {_busiest(one)}). Each checkout cost PostgreSQL "
             f"{p1['db_core_ms']:.1f} core-ms with 1 shard ({pn['db_core_ms']:.1f} with {top['shards']}) and the rest of "
             f"the stack {p1['rest_core_ms']:.1f} core-ms: with each shard on a core of its own, PostgreSQL would "
             f"carry about {p1['db_ceiling']:,.0f} checkouts/s per shard ({pn['db_ceiling']:,.0f}/s for "
             f"{top['shards']} shards), while the rest of the stack on {one['cores']} cores of its own tops out near "
             f"{p1['rest_ceiling']:,.0f}/s: the {p1['limit'] or 'unknown part'} is what would saturate next."
             if p1["db_ceiling"] and p1["rest_ceiling"] and pn["db_ceiling"] else
             f"Checkout-only load offered at {r[SHARDS[0]].summary['offered']}: {ratios}; the CPU costs could not be "
             f"measured.")
    facts = {}
    for n, v in x.items():
        pr = v["projection"]
        facts[name(n)] = (f"{v['checkouts_per_s']:.1f} checkouts/s; CPU by part {v['cpu_by_group']}; core-ms per "
                          f"checkout {v['core_ms_per_checkout']}; machine CPU {v['machine_cpu'] or 0:.0f}%; processes at a "
                          f"full core: {v['saturation']['at_one_core'] or 'none'}; projection: PostgreSQL "
                          f"{(pr['db_ceiling'] or 0):,.0f}/s with a core per shard, the rest {(pr['rest_ceiling'] or 0):,.0f}/s "
                          f"on {v['cores']} cores, the whole stack {(pr['machine_ceiling'] or 0):,.0f}/s on these cores")
    facts["how the projection is made"] = (
        "core-ms per checkout = a part's average CPU (100% = one core) / checkouts per second, over the run after a "
        f"{WARMUP_S:.0f} s warm-up; PostgreSQL with N shards on a core each = N x 1000 / (its core-ms per checkout), "
        "the work being spread evenly over the shards; the rest (apps, balancer, broker, cache, payments; not the "
        f"load generator) on C cores = C x 1000 / (their core-ms per checkout)")
    return Outcome(checks, claim, facts)


def charts(out: Path, results: dict[str, VariantResult]) -> list[Path]:
    from services.lab.report import COLORS, plt, save

    x = [results[name(n)].extra for n in SHARDS]
    labels = [name(n) for n in SHARDS]
    fig, (ax_rate, ax_cost) = plt.subplots(1, 2, figsize=(12, 5))
    measured = [v["checkouts_per_s"] for v in x]
    ax_rate.bar(labels, measured, color=COLORS[0], label="measured (all parts on these cores)")
    ax_rate.plot(labels, [measured[0] * n for n in SHARDS], "o--", color="grey", label="N x one shard")
    ax_rate.plot(labels, [v["projection"]["db_ceiling"] or 0 for v in x], "s:", color=COLORS[1],
                 label="PostgreSQL alone, a core per shard (projected)")
    ax_rate.plot(labels, [v["projection"]["rest_ceiling"] or 0 for v in x], "^:", color=COLORS[2],
                 label=f"rest of the stack on {x[0]['cores']} cores (projected)")
    for i, v in enumerate(measured):
        ax_rate.annotate(f"{v:,.0f}/s", (i, v), ha="center", va="bottom", fontsize=9)
    ax_rate.set_yscale("log")
    ax_rate.set_ylabel("checkouts/s")
    ax_rate.set_title("throughput: measured and projected")
    ax_rate.legend(fontsize=7)
    parts = sorted({k for v in x for k in v["core_ms_per_checkout"]},
                   key=lambda k: -max(v["core_ms_per_checkout"].get(k, 0) for v in x))
    bottom = [0.0] * len(x)
    palette = COLORS + ["#17becf", "#bcbd22", "#7f7f7f", "#e377c2"]
    for i, part in enumerate(parts):
        values = [v["core_ms_per_checkout"].get(part, 0.0) for v in x]
        ax_cost.bar(labels, values, bottom=bottom, color=palette[i % len(palette)], label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax_cost.set_ylabel("core-ms per checkout")
    ax_cost.set_title("what each checkout cost each part")
    ax_cost.legend(fontsize=7)
    for ax in (ax_rate, ax_cost):
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("shop.shard-scaling")
    return [save(fig, out / "shard-scaling.png")]


SHARD_SCALING = Experiment(
    name="shop.shard-scaling",
    title="checkouts/s with 1, 2 and 4 PostgreSQL shards, and the CPU of every part",
    question="Does adding shards add checkout capacity, and if not, which part runs out first?",
    load=LoadSpec(design="shop", generator="k6", rate=250, duration_s=20, seed_count=100, read_weight=0,
                  write_weight=1, max_vus=64),
    variants=[Variant(name(n), shards=n) for n in SHARDS],
    evaluate=evaluate,
    after_load=_after_load,
    charts=charts,
    columns=[("checkouts/s", lambda r: f"{r.extra.get('checkouts_per_s', 0):,.1f}"),
             ("machine CPU", lambda r: f"{r.extra.get('machine_cpu') or 0:.0f}%"),
             ("PostgreSQL core-ms / checkout", lambda r: f"{r.extra.get('core_ms_per_checkout', {}).get('postgres', 0):.1f}")],
)

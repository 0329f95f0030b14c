"""``shop.reshard``: a live reshard from 2 to 3 PostgreSQL servers under load.

How many buckets and rows move, how long each bucket's writes are blocked, and whether checkouts
keep succeeding through the move.
"""

from __future__ import annotations

import json

from loadtests.shop.analysis import CHECKOUT_ROUTE, figures
from services.lab.analysis import endpoint, ms
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


def reshard_figures(r: VariantResult) -> dict:
    path = r.load.out_dir / "reshard.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _reshard(results: dict[str, VariantResult]) -> Outcome:
    r = results["2 to 3 shards"]
    f, m = figures(r), reshard_figures(r)
    c = endpoint(r, CHECKOUT_ROUTE)
    checks = [
        Check("the reshard ran during the load", bool(m) and not r.summary.get("fault_errors"),
              str(r.summary.get("fault_errors") or "")),
        Check("about a third of the buckets moved (1/(N+1) for one more server)",
              bool(m) and abs(m.get("share_moved", 0) - 1 / 3) < 0.02, f"{m.get('buckets_moved')} of {m.get('buckets')}"),
        Check("every moved bucket verified (row counts and checksums)", bool(m.get("verified"))),
        Check("checkouts kept succeeding through the move", c["requests"] > 0 and c["failures"] <= 0.01 * c["requests"],
              f"{c['failures']} of {c['requests']} failed"),
    ]
    claim = (f"Moving {m.get('buckets_moved', 0)} of {m.get('buckets', 0)} buckets ({m.get('share_moved', 0):.0%}) and "
             f"{m.get('rows_moved', 0):,} rows onto a third PostgreSQL server under {r.summary['offered']} took "
             f"{m.get('seconds', 0):.1f} s; each bucket's writes were blocked p50 {m.get('block_ms_p50', 0):.0f} ms, "
             f"max {m.get('block_ms_max', 0):.0f} ms; {c['failures']} of {c['requests']:,} checkouts failed; "
             f"{f.get('orders', 0):,} orders after it, {f.get('unreadable_acked_count', 0)} acknowledged ones lost, "
             f"{f.get('duplicate_key_orders', 0)} duplicated.")
    return Outcome(checks, claim, {"buckets moved": f"{m.get('buckets_moved')} of {m.get('buckets')}",
                                   "write block p50 / max": f"{m.get('block_ms_p50', 0):.0f} / "
                                                            f"{m.get('block_ms_max', 0):.0f} ms",
                                   "checkout p99": ms(c["p99_ms"])})


RESHARD = Experiment(
    name="shop.reshard",
    title="live reshard from 2 to 3 PostgreSQL servers under load",
    question="Can the shop add a database server while it sells, and what does each moved bucket cost its writers?",
    load=LoadSpec(design="shop", generator="k6", rate=60, duration_s=40, seed_count=1000, read_weight=1,
                  write_weight=1, faults="at 25% reshard 3"),
    variants=[Variant("2 to 3 shards")],
    evaluate=_reshard,
    columns=[("buckets moved", lambda r: str(reshard_figures(r).get("buckets_moved", "-"))),
             ("block max", lambda r: ms(reshard_figures(r).get("block_ms_max")))],
)

"""``shop.idempotency``: a client that retries everything, and what the idempotency keys make of it.

Real clients retry: double clicks, a mobile app resending on a flaky network, a proxy retrying a
request whose answer it gave up on. The generator sends each checkout as 2-3 concurrent copies
(one k6 ``http.batch``), then again and again with a client timeout shorter than the payment
provider's latency (the answer is dropped while the saga still runs), always with the same
Idempotency-Key, until a final answer. The shop must create one order and take one charge per
key, answer the copies that overlap a running checkout with 409 ``idempotency_key_in_use``, and
answer the ones after it with the first answer again (``Idempotent-Replayed: true``).
"""

from __future__ import annotations

from loadtests.shop import analysis as a
from loadtests.shop.checks import part_url
from services.lab.analysis import pct, read_jsonl
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec

VARIANT = "hostile retries"
PAYMENT_MS = 100
CLIENT_TIMEOUT_MS = 50  # shorter than the payment alone: the first copies' answers are always dropped


def retry_figures(records: list[dict], summary: dict, assignment) -> dict:
    group = a.checkouts(records, summary["started_at"], assignment)
    counts = a.retry_counts(group, records)
    answers = a.every_answer_status(group)
    counts["answer_statuses"] = {str(k): v for k, v in sorted(answers.items())}
    counts["client_5xx"] = {str(k): v for k, v in answers.items() if k >= 500 and k != 503}
    counts["server_5xx"] = a.server_errors(summary.get("server", {}))
    counts["final_statuses"] = dict(a.statuses(group))
    return counts


def _after_load(settings, state, result) -> dict:
    assignment = a.read_shard_map(part_url(state, "postgres-0"))
    return retry_figures(read_jsonl(result.out_dir / "acks.jsonl"), result.summary, assignment)


def evaluate(results: dict[str, VariantResult]) -> Outcome:
    r = results[VARIANT]
    x, f = r.extra, r.summary.get("loss") or {}
    keys = x["acknowledged_keys"] + x["declined_keys"]
    checks = [
        Check("the client was hostile: concurrent copies, answers dropped by its timeout, 409 in use and replays all "
              "happened", min(x["concurrent_copies"], x["timeouts"], x["in_use"], x["replays"]) > 0,
              f"{x['concurrent_copies']:,} concurrent copies, {x['timeouts']:,} timeouts, {x['in_use']:,} in use, "
              f"{x['replays']:,} replays"),
        Check("every checkout got a final answer", x["unanswered_keys"] == 0 and x["checkouts"] > 0,
              f"{x['unanswered_keys']} of {x['checkouts']:,} without one"),
        Check("orders == distinct keys answered 201 (+ declined)", f.get("orders") == keys,
              f"{f.get('orders')} orders, {x['acknowledged_keys']:,} keys acknowledged, {x['declined_keys']} declined"),
        Check("0 duplicate orders for a key", f.get("duplicate_key_orders") == 0, str(f.get("duplicate_key_orders"))),
        Check("0 double charges; one captured charge per paid order",
              f.get("double_charged") == 0 and f.get("charges_captured") == f.get("paid_orders") == x["acknowledged_keys"],
              f"{f.get('charges_captured')} charges, {f.get('paid_orders')} paid orders, double {f.get('double_charged')}"),
        Check("no 500 anywhere", not x["client_5xx"] and not x["server_5xx"],
              f"client {x['client_5xx'] or 'none'}, server {x['server_5xx'] or 'none'}"),
    ]
    claim = (f"A client that sent each of {x['checkouts']:,} checkouts as 2-3 concurrent copies and resent it with a "
             f"{CLIENT_TIMEOUT_MS} ms timeout (the payment alone takes {PAYMENT_MS} ms) until it had an answer sent "
             f"{x['requests']:,} requests: {x['duplicates_sent']:,} duplicates ({x['concurrent_copies']:,} concurrent "
             f"copies), {x['timeouts']:,} answers dropped by the timeout, {x['in_use']:,} answered 409 "
             f"idempotency_key_in_use and {x['replays']:,} replayed (Idempotent-Replayed). The shop created "
             f"{f.get('orders', 0):,} orders for {x['acknowledged_keys']:,} acknowledged keys and captured "
             f"{f.get('charges_captured', 0):,} charges: {f.get('duplicate_key_orders', 0)} double orders, "
             f"{f.get('double_charged', 0)} double charges.")
    facts = {
        "checkouts (keys) / requests sent": f"{x['checkouts']:,} / {x['requests']:,} "
                                            f"({x['requests'] / max(1, x['checkouts']):.1f} per checkout)",
        "answers by status (every request)": x["answer_statuses"],
        "final answer per checkout": x["final_statuses"],
        "201 created (not replayed) / replayed": f"{x['created']:,} / {x['replays']:,}",
        "orders / paid / charges captured": f"{f.get('orders')} / {f.get('paid_orders')} / {f.get('charges_captured')}",
        "share of requests that were duplicates": pct(x["duplicates_sent"] / max(1, x["requests"])),
    }
    return Outcome(checks, claim, facts)


def charts(out, results: dict[str, VariantResult]):
    from services.lab.report.charts import bar_chart

    x = results[VARIANT].extra
    f = results[VARIANT].summary.get("loss") or {}
    values = {"checkouts": x["checkouts"], "requests": x["requests"], "timeouts": x["timeouts"],
              "409 in use": x["in_use"], "replays": x["replays"], "orders": f.get("orders", 0),
              "charges": f.get("charges_captured", 0)}
    return [bar_chart(values, out / "idempotency.png",
                      "shop.idempotency: what the client sent, what the shop did", "count")]


IDEMPOTENCY = Experiment(
    name="shop.idempotency",
    title="a client that retries every checkout: concurrent copies, dropped answers, resends",
    question="Clients retry every checkout (duplicates, concurrent duplicates, responses dropped by client "
             "timeouts): does any key make two orders or two charges?",
    load=LoadSpec(design="shop", generator="k6", rate=20, duration_s=30, seed_count=100, read_weight=0, write_weight=1,
                  max_vus=200, options={"retry": "hostile", "copies": "2-3",
                                        "client_timeout_ms": str(CLIENT_TIMEOUT_MS), "short_rounds": "3"}),
    variants=[Variant(VARIANT, app_env={"SHOP_PAYMENTS_LATENCY_MS": str(PAYMENT_MS), "SHOP_PAYMENTS_JITTER_MS": "20"})],
    evaluate=evaluate,
    after_load=_after_load,
    charts=charts,
    columns=[("requests per checkout", lambda r: f"{r.extra.get('requests', 0) / max(1, r.extra.get('checkouts', 0)):.1f}"),
             ("replays", lambda r: str(r.extra.get("replays", "-"))),
             ("double charged", lambda r: str((r.summary.get("loss") or {}).get("double_charged", "-")))],
)

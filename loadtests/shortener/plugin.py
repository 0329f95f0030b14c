"""The shortener's plug into the lab's engine (see :mod:`services.lab.contract`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadtests.shortener import checks
from loadtests.shortener.analysis import CREATE, REDIRECT
from loadtests.shortener.bench import bench
from loadtests.shortener.estimate import ShortenerEstimate
from loadtests.shortener.experiments import EXPERIMENTS
from loadtests.shortener.gauges import gauges
from loadtests.shortener.seed import (
    MIN_CREATED_RATIO,
    link_store_url,
    seed_direct,
    warm,
)
from loadtests.shortener.seed import seed as seed_through_api
from services.lab.contract import (
    Check,
    Design,
    DesignPlugin,
    RunContext,
    Verification,
    completed,
)
from services.lab.errors import LabCommandError

HERE = Path(__file__).resolve().parent


class ShortenerPlugin(DesignPlugin):
    design = Design(
        name="shortener",
        app="shortener.main:create_app",
        env_prefix="SHORTENER_",
        needs=("redis", "postgres", "kafka"),
        migrate_module="shortener.migrate",
        workers=(("analytics", "shortener.consumers:create_app"),),
        port=8080,
        secrets=("ID_SECRET",),
    )
    locustfile = HERE / "locustfile.py"
    k6_script = HERE / "load.k6.js"
    open_loop = "k6"
    experiments = EXPERIMENTS
    estimate_model = ShortenerEstimate()

    @staticmethod
    def seed(ctx: RunContext, spec, previous: dict | None = None) -> dict:
        """``{"host", "links": [{"code", "url"}], "clicks_before"}``: links imported in bulk into the link
        store (:func:`~loadtests.shortener.seed.import_links`), or at a target created one by one through
        its API, and the clicks they had before this run (a warm-up's, or an earlier run's on the same stack)."""
        if previous is not None:
            codes = [link["code"] for link in previous["links"]]
            return {**previous, "clicks_before": asyncio.run(checks.clicks_of(ctx.base_url, codes))}
        if ctx.target is not None:
            links = asyncio.run(seed_through_api(ctx.base_url, spec.seed_count, progress=None))
            if len(links) < MIN_CREATED_RATIO * spec.seed_count:
                raise LabCommandError(f"seeding through {ctx.base_url}'s API created only {len(links)} of "
                                      f"{spec.seed_count} links")
        else:
            links = asyncio.run(seed_direct(link_store_url(ctx.state), spec.seed_count))
        record: dict = {"host": ctx.base_url, "links": links, "clicks_before": 0}
        if spec.warm:
            record["clicks_before"] = asyncio.run(warm(ctx.base_url, links))
            ctx.say(f"warmed the cache with {record['clicks_before']} links")
        return record

    @staticmethod
    def verify(ctx: RunContext, result) -> Verification:
        redirects = result.summary["endpoints"].get(REDIRECT, {})
        served = redirects.get("requests", 0) - redirects.get("failures", 0)
        figures = checks.verify(ctx.base_url, ctx.out_dir, served)
        found: list[Check] = []
        if figures["acknowledged"]:
            found.append(Check("no acknowledged create lost", figures["lost"] == 0 and figures["unreadable"] == 0,
                               f"{figures['acknowledged']} acknowledged, {figures['lost']} lost, "
                               f"{figures['unreadable']} unreadable"))
        found += _click_checks(figures.get("clicks"), result.summary)
        return Verification(figures, found)

    gauges = staticmethod(gauges)
    bench = staticmethod(bench)

    @staticmethod
    def cost_unit(spec, summary: dict) -> tuple[str, int]:
        """A redirect or a create when the run is only those; otherwise any request."""
        if spec.write_weight == 0:
            return "redirect", completed(summary, REDIRECT)
        if spec.read_weight == 0:
            return "create", completed(summary, CREATE)
        return "request", completed(summary)


def _click_checks(clicks: dict | None, summary: dict) -> list[Check]:
    """Clicks PostgreSQL counted against redirects served: never more (no double count); exactly
    as many unless a fault killed an instance, whose unflushed clicks are lost by design."""
    if not clicks or clicks["redirects_ok"] == 0:
        return []  # a run without redirects has nothing to count
    detail = f"{clicks['clicks_counted']} counted of {clicks['redirects_ok']} served" + (
        f"; the last reading was incomplete: {clicks['unreadable']}" if clicks.get("unreadable") else "")
    found = [Check("no click counted twice", clicks["clicks_counted"] <= clicks["redirects_ok"], detail)]
    killed_instance = any(f["action"] == "kill" and f["component"].startswith("shortener-")
                          for f in summary.get("faults", []))
    if not killed_instance:
        found.append(Check("every click counted", clicks["clicks_missing"] == 0, detail))
    return found


PLUGIN = ShortenerPlugin()

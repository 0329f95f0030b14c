"""``sdlab bench shortener``: the redirect hot path against the machine's ceiling, in one sitting.

Both targets run as one uvicorn process with the same flags (uvloop, httptools), both are
loaded by the same generator with the same Zipf-distributed paths, one after the other. wrk
is the generator when installed; Locust saturates near 6k req/s on 2 cores, so without wrk
the figures measure Locust more than the server, and the output says so.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from loadtests.shortener.seed import link_store_url, seed_direct, warm
from services.lab.backends.local.supervisor import down, down_if_running, up
from services.lab.bench import BenchFigure, bare_ceiling, have_wrk, run_wrk, wrk_script
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.contract import BenchOptions
from services.lab.machine import invoked_command, machine_spec
from services.lab.measure.cost import CostMeter, cost_per_op
from services.lab.measure.load import LoadSpec, results_dir, run_load, verify

LINKS = 2000
ZIPF_S = 1.1
CREATE_RATE = 200  # creates/s for the create's cost (open loop, k6): well below what one instance takes


def _locust(target: str, url: str, seed_file: Path, out: Path, duration_s: int, users: int) -> BenchFigure:
    env = {"SDLAB_SEED_FILE": str(seed_file), "SDLAB_READ_WEIGHT": "1", "SDLAB_WRITE_WEIGHT": "0",
           "SDLAB_USERS": str(users), "PYTHONPATH": str(REPO_ROOT)}
    prefix = out / f"locust-{url.rsplit(':', 1)[1]}"
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtests/shortener/locustfile.py"), "--headless",
           "--host", url, "-u", str(users), "-r", str(users), "-t", f"{duration_s}s", "--csv", str(prefix),
           "--only-summary", "--loglevel", "WARNING"]
    subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, timeout=duration_s + 60)
    with open(f"{prefix}_stats.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return BenchFigure(target, float(row["Requests/s"]), float(row["50%"]), float(row["99%"]))


def bench(settings: LabSettings, options: BenchOptions, say: Callable[[str], None]) -> tuple[Path, dict]:
    out = results_dir("bench-shortener", settings.results)
    wrk = have_wrk()
    if not wrk:
        say("wrk is not installed (`apt-get install wrk`, or `make bench` as root): using Locust, which saturates "
            "near 6k req/s on 2 cores, so these figures bound the generator, not the server")
    down_if_running(settings, say, "the benchmark starts its own (one instance)")
    one = settings.model_copy(update={"shortener_instances": 1})
    state = up(one, ["shortener"], app_env={"SHORTENER_ANALYTICS_ENABLED": "true"})
    figures: list[BenchFigure] = []
    try:
        with bare_ceiling(one, state.marker, out) as bare_url:
            instance = state.components["shortener-1"].url
            links = asyncio.run(seed_direct(link_store_url(state), LINKS))
            asyncio.run(warm(instance, links))
            seed_file = out / "seed.json"
            seed_file.write_text(json.dumps({"links": links}))
            script = out / "zipf.lua"
            script.write_text(wrk_script([f"/{link['code']}" for link in links], ZIPF_S))
            meter = CostMeter(state)
            idle = [meter.read()]
            for _ in range(3):
                time.sleep(1.0)
                idle.append(meter.read())
            for target, url in (("bare ASGI 302 (ceiling)", bare_url), ("shortener redirect", instance)):
                say(f"loading {target} for {options.duration_s}s ...")
                before = meter.read()
                if wrk:
                    figures.append(run_wrk(target, url, script, options.duration_s, options.connections, out))
                else:
                    figures.append(_locust(target, url, seed_file, out, options.duration_s, options.connections))
            time.sleep(1.0)  # the clicks' batches flushed and aggregated: part of a redirect's cost
            redirect_cost = cost_per_op(idle, (before, meter.read()), "redirect",
                                        round(figures[-1].rps * options.duration_s), meter.unavailable)
        say(f"creates: {CREATE_RATE}/s for {options.duration_s}s (k6, open loop), for what one create costs ...")
        creates = run_load(one, LoadSpec(design="shortener", name="bench-create", generator="k6", rate=CREATE_RATE,
                                         duration_s=options.duration_s, read_weight=0, write_weight=1, seed_count=100),
                           say=say, out=out / "create")
        create_checks = verify(one, creates, say=say)
    finally:
        down(one)
    ceiling = figures[0].rps
    summary = {
        "machine": machine_spec(), "command": invoked_command(), "generator": "wrk" if wrk else "locust",
        "connections": options.connections, "duration_s": options.duration_s, "analytics": "on",
        "popularity": f"Zipf s={ZIPF_S} over {LINKS} links",
        "figures": [{**vars(f), "ratio": round(f.rps / ceiling, 3)} for f in figures],
        "ratio": round(figures[1].rps / ceiling, 3),
        # What one operation costs (all processes of the stack; PostgreSQL statements on every server).
        "redirect_core_ms": redirect_cost["core_ms_total"], "redirect_pg_statements": redirect_cost["pg_statements"],
        "redirect_cost": redirect_cost,
        "create_core_ms": creates.summary["cost_per_op"]["core_ms_total"],
        "create_pg_statements": creates.summary["cost_per_op"]["pg_statements"],
        "create_p99_ms": creates.summary["p99_ms"], "create_cost": creates.summary["cost_per_op"],
        "create_checks_passed": all(c.passed for c in create_checks.checks),
        # Every PostgreSQL table after the creates (bytes per row, for storage a year).
        "tables": creates.summary.get("tables"),
        "idle_cores": redirect_cost["idle"]["cores"], "idle_pg_statements_per_s": redirect_cost["idle"]["pg_statements_per_s"],
        "goals": {"create_pg_statements": "<= 2", "idle_cores": "<= 0.05", "idle_pg_statements_per_s": "<= 10"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out, summary

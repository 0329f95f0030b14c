"""``sdlab bench shortener``: the redirect hot path against the machine's ceiling, in one sitting.

Both targets run as one uvicorn process with the same flags (uvloop, httptools), both are
loaded by the same generator with the same Zipf-distributed paths, one after the other. wrk
is the generator when installed (``apt-get install wrk``); Locust saturates near 6k req/s on
2 cores, so without wrk the figures measure Locust more than the server, and the output says so.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.lab import procs
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.errors import LabCommandError
from services.lab.load import results_dir
from services.lab.machine import invoked_command, machine_spec
from services.lab.stack import uvicorn_cmd
from services.lab.supervisor import down, down_if_running, up

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class BenchFigure:
    target: str
    rps: float
    p50_ms: float
    p99_ms: float


def zipf_cdf(n: int, s: float) -> list[float]:
    weights = [1 / (r**s) for r in range(1, n + 1)]
    total, acc, cdf = sum(weights), 0.0, []
    for w in weights:
        acc += w
        cdf.append(acc / total)
    return cdf


def wrk_script(paths: list[str], s: float) -> str:
    cdf = zipf_cdf(len(paths), s)
    return (
        "local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
        "local cdf = {" + ",".join(f"{c:.9f}" for c in cdf) + "}\n"
        "request = function()\n"
        "  local r = math.random()\n"
        "  local lo, hi = 1, #cdf\n"
        "  while lo < hi do\n"
        "    local mid = math.floor((lo + hi) / 2)\n"
        "    if cdf[mid] < r then lo = mid + 1 else hi = mid end\n"
        "  end\n"
        "  return wrk.format(\"GET\", paths[lo])\n"
        "end\n"
    )


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> tuple[float, float, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx and int(non2xx.group(1)) > 0:
        raise LabCommandError(f"{non2xx.group(1)} answers were not redirects; the benchmark is not valid")
    return rps, p50, p99


def _wrk(url: str, script: Path, duration_s: int, connections: int) -> tuple[float, float, float, str]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60).stdout
    return (*parse_wrk(out), out)


def _locust(url: str, seed_file: Path, out: Path, duration_s: int, users: int) -> tuple[float, float, float, str]:
    env = {"SDLAB_SEED_FILE": str(seed_file), "SDLAB_READ_WEIGHT": "1", "SDLAB_WRITE_WEIGHT": "0",
           "SDLAB_USERS": str(users), "PYTHONPATH": str(REPO_ROOT)}
    prefix = out / f"locust-{url.rsplit(':', 1)[1]}"
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtests/shortener/locustfile.py"), "--headless",
           "--host", url, "-u", str(users), "-r", str(users), "-t", f"{duration_s}s", "--csv", str(prefix),
           "--only-summary", "--loglevel", "WARNING"]
    subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, timeout=duration_s + 60)
    with open(f"{prefix}_stats.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return float(row["Requests/s"]), float(row["50%"]), float(row["99%"]), ""


def run_bench(settings: LabSettings, design: str, *, duration_s: int = 10, connections: int = 64,
              say=print) -> tuple[Path, dict]:
    if design != "shortener":
        raise LabCommandError(f"no benchmark for {design!r}; available: shortener")
    out = results_dir("bench-shortener", settings.results)
    have_wrk = shutil.which("wrk") is not None
    if not have_wrk:
        say("wrk is not installed (`apt-get install wrk`, or `make bench` as root): using Locust, which saturates "
            "near 6k req/s on 2 cores, so these figures bound the generator, not the server")
    down_if_running(settings, say, "the benchmark starts its own (one instance)")
    one = settings.model_copy(update={"shortener_instances": 1})
    state = up(one, [design], app_env={"SHORTENER_ANALYTICS_ENABLED": "true"})
    bare_port = one.app_port + 50
    bare = procs.spawn(uvicorn_cmd("services.lab.bench_app:app", one.host, bare_port, factory=False),
                       log_path=out / "bare-asgi.log", env={**os.environ, procs.MARKER_ENV: state.marker},
                       cwd=REPO_ROOT)
    try:
        from loadtests.shortener.seed import seed, warm

        instance = state.components[f"{design}-1"].url
        links = asyncio.run(seed(f"http://{one.host}:{state.ports[design]}", 2000, progress=lambda *_: None))
        asyncio.run(warm(instance, links))
        (out / "seed.json").write_text(json.dumps({"links": links}))
        bare_url = f"http://{one.host}:{bare_port}"
        _wait_http(bare_url)
        figures = []
        script = out / "zipf.lua"
        script.write_text(wrk_script([f"/{l['code']}" for l in links], 1.1))
        for target, url in (("bare ASGI 302 (ceiling)", bare_url), ("shortener redirect", instance)):
            say(f"loading {target} for {duration_s}s ...")
            if have_wrk:
                rps, p50, p99, raw = _wrk(url, script, duration_s, connections)
                (out / f"wrk-{url.rsplit(':', 1)[1]}.txt").write_text(raw)
            else:
                rps, p50, p99, _ = _locust(url, out / "seed.json", out, duration_s, connections)
            figures.append(BenchFigure(target, rps, p50, p99))
    finally:
        procs.stop(bare)
        down(one)
    ceiling = figures[0].rps
    summary = {
        "machine": machine_spec(), "command": invoked_command(), "generator": "wrk" if have_wrk else "locust",
        "connections": connections, "duration_s": duration_s, "analytics": "on", "popularity": "Zipf s=1.1 over 2000 links",
        "figures": [{**vars(f), "ratio": round(f.rps / ceiling, 3)} for f in figures],
        "ratio": round(figures[1].rps / ceiling, 3),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out, summary


def _wait_http(url: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise LabCommandError(f"the bare ASGI app at {url} did not start")

"""``sdlab bench DESIGN``: a design's hot path against the machine's ceiling, in one sitting.

The engine runs the design's own benchmark (its plugin's ``bench``) and offers it the parts
every benchmark needs: wrk with a weighted path script (wrk measures the ceiling that Locust
cannot reach: ``apt-get install wrk``, or ``make bench`` as root), its output parsed, its CPU
sampled; and the bare ASGI ceiling app started and stopped beside the stack.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from services.lab import procs
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.contract import BenchOptions
from services.lab.designs import plugin_for
from services.lab.errors import LabCommandError
from services.lab.stack import uvicorn_cmd

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class BenchFigure:
    target: str
    rps: float
    p50_ms: float
    p99_ms: float
    generator_cpu: float | None = None  # % of one core, averaged over the run


def run_bench(settings: LabSettings, design: str, *, duration_s: int = 10, connections: int = 64,
              say: Callable[[str], None] = print) -> tuple[Path, dict]:
    plugin = plugin_for(design)
    if plugin.bench is None:
        raise LabCommandError(f"design {design!r} has no benchmark")
    return plugin.bench(settings, BenchOptions(duration_s, connections), say)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def zipf_cdf(n: int, s: float) -> list[float]:
    weights = [1 / (r**s) for r in range(1, n + 1)]
    total, acc, cdf = sum(weights), 0.0, []
    for w in weights:
        acc += w
        cdf.append(acc / total)
    return cdf


def wrk_script(paths: list[str], s: float) -> str:
    """A wrk Lua script that requests ``paths``, the r-th with weight 1/r**s (Zipf)."""
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
        raise LabCommandError(f"{non2xx.group(1)} answers were errors; the benchmark is not valid")
    return rps, p50, p99


def _sample_cpu(pid: int, samples: list[float], stop: threading.Event) -> None:
    try:
        proc = psutil.Process(pid)
        proc.cpu_percent(None)
        while not stop.wait(1.0):
            samples.append(proc.cpu_percent(None))
    except psutil.Error:
        return  # wrk ended


def run_wrk(target: str, url: str, script: Path, duration_s: int, connections: int, out: Path) -> BenchFigure:
    """wrk -t1 against ``url`` with ``script``; its output is kept in ``out``, its CPU sampled."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script), url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_cpu, args=(proc.pid, samples, stop), daemon=True)
    sampler.start()
    output, _ = proc.communicate(timeout=duration_s + 60)
    stop.set()
    sampler.join(2)
    (out / f"wrk-{url.rsplit(':', 1)[1].split('/')[0]}.txt").write_text(output)
    rps, p50, p99 = parse_wrk(output)
    cpu = round(sum(samples) / len(samples), 1) if samples else None
    return BenchFigure(target, rps, p50, p99, cpu)


@contextmanager
def bare_ceiling(settings: LabSettings, marker: str, out: Path, port_offset: int = 50) -> Iterator[str]:
    """The bare ASGI app on its own port, same uvicorn flags as the instances; yields its URL."""
    port = settings.app_port + port_offset
    bare = procs.spawn(uvicorn_cmd("services.lab.bench_app:app", settings.host, port, factory=False),
                       log_path=out / "bare-asgi.log", env={**os.environ, procs.MARKER_ENV: marker}, cwd=REPO_ROOT)
    url = f"http://{settings.host}:{port}"
    try:
        _wait_http(url)
        yield url
    finally:
        procs.stop(bare)


def _wait_http(url: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise LabCommandError(f"the bare ASGI app at {url} did not start")

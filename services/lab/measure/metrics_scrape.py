"""Scrape every instance's ``/metrics`` and reduce two scrapes to the counters' differences."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.lab.measure.metrics_window import grown
from services.lab.state import LabState


def scrape(state: LabState, design: str, out_dir: Path, tag: str) -> dict[str, str]:
    """Fetch /metrics of the design's app processes; save each; return the texts by component."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    for c in state.components.values():
        if c.kind != "app" or c.design != design:
            continue
        try:
            text = httpx.get(f"{c.url}/metrics", timeout=3).text
        except httpx.HTTPError:
            continue  # a killed instance has no metrics; the report says which were scraped
        (out_dir / f"{c.name}-{tag}.prom").write_text(text)
        texts[c.name] = text
    return texts


def samples(text: str) -> dict[str, float]:
    """Counter samples of one scrape, keyed ``name{label=value,...}`` (service label dropped)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "counter":
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "service")
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def delta(before: dict[str, str], after: dict[str, str]) -> dict[str, float]:
    """Counter increases over the run, summed over instances. An instance restarted mid-run
    starts again from zero, so a value below its start counts from zero (the value after)."""
    sums: dict[str, float] = defaultdict(float)
    for instance, text in after.items():
        start = samples(before.get(instance, ""))
        for key, value in samples(text).items():
            sums[key] += grown(start.get(key, 0.0), value)
    return dict(sums)

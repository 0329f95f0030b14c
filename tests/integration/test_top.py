"""`sdlab top --once` against the session stack while redirects flow."""

from __future__ import annotations

import json
import threading
import time

import httpx

from tests.support.lab import Lab


def _traffic(url: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        codes = [client.post("/api/v1/links", json={"url": f"https://example.com/top/{i}"},
                             headers={"X-Forwarded-For": f"198.18.7.{i}"}).json()["code"] for i in range(5)]
        while not stop.is_set():
            for code in codes:
                client.get(f"/{code}")


def test_top_once_shows_components_services_and_the_design_gauges(lab: Lab):
    stop = threading.Event()
    sender = threading.Thread(target=_traffic, args=(lab.url(), stop), daemon=True)
    sender.start()
    try:
        time.sleep(1.0)
        frame = json.loads(lab.run("top", "--once", "--json", "--interval", "2").stdout)
        text = lab.run("top", "--once").stdout
    finally:
        stop.set()
        sender.join(10)
    names = {c["name"] for c in frame["components"]}
    assert {"redis", "postgres-0", "postgres-1", "kafka", "caddy", "shortener-1", "shortener-2",
            "shortener-analytics-1"} <= names
    for c in frame["components"]:
        assert c["state"] == "ready" and c["cpu_percent"] is not None and c["rss_mib"] > 0, c
    instances = [s for s in frame["services"] if s["name"] in ("shortener-1", "shortener-2")]
    assert sum(s["rps"] for s in instances) > 20, instances
    assert all(s["p50_ms"] is not None and s["p99_ms"] >= s["p50_ms"] for s in instances if s["rps"] > 0)
    gauges = dict(frame["gauges"]["shortener"])
    assert gauges["cache hit ratio"].endswith("lookups/s") and "%" in gauges["cache hit ratio"], gauges
    assert "connections" in gauges["database pool in use"]
    assert gauges["click consumer lag (records)"] != "-"
    chat = dict(frame["gauges"]["messaging"])
    assert chat["open connections"].replace(",", "").isdigit(), chat  # the gateways export the gauge
    assert {"deliveries/s (frames to sockets)", "delivery lag p99 (stored → written)", "slow readers cut off"} <= set(chat)
    shop = dict(frame["gauges"]["shop"])
    # The worker's sweep reports each shard's outbox backlog and held reservations; the map is v1 or later.
    assert shop["outbox backlog (rows)"].replace(",", "").isdigit(), shop
    assert shop["reservations held"].replace(",", "").isdigit() and shop["shard map version"].isdigit(), shop
    assert {"queries/s per shard", "checkouts", "events relayed/s", "sagas recovered"} <= set(shop)
    for needle in ("components", "RSS MiB", "req/s", "p99 ms", "cache hit ratio", "shortener-analytics-1"):
        assert needle in text, needle


def test_top_flags_are_checked(lab: Lab):
    result = lab.run("top", "--json", check=False)
    assert result.returncode == 2 and "add --once" in result.stderr

"""docker-compose.yml is held against the local stack definition: same services, env, health paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from services.lab.config import DEPLOY_DIR, REPO_ROOT, LabSettings
from services.lab.designs import names as design_names
from services.lab.designs import resolve
from services.lab.stack import LIVENESS_PATH, READINESS_PATH, plan_stack

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
COMPOSE_ONLY = {"toxiproxy", "prometheus", "grafana"} | {f"{d}-migrate" for d in design_names()}


def _compose_instances(design: str) -> int:
    return sum(1 for name in SERVICES if name.removeprefix(f"{design}-").isdigit())


def _local_plan():
    counts = {f"{d}_instances": _compose_instances(d) for d in design_names()}
    # With the generated secrets, so compose is held to pass every one of them too.
    secrets = {f"{d.env_prefix}{name}": "generated" for d in resolve([]) for name in d.secrets}
    return plan_stack(LabSettings(home="/tmp/sdlab-compose-check", **counts), resolve([]), secrets=secrets)


def test_same_services():
    local = {c.name for c in _local_plan().components}
    assert set(SERVICES) - COMPOSE_ONLY == local


def test_app_services_get_the_same_env_names():
    for component in _local_plan().apps:
        compose_env = set(SERVICES[component.name]["environment"])
        assert set(component.env) <= compose_env, (component.name, set(component.env) - compose_env)


def test_health_paths_match():
    for component in _local_plan().apps:
        test = " ".join(SERVICES[component.name]["healthcheck"]["test"])
        assert READINESS_PATH in test, component.name
    assert LIVENESS_PATH in " ".join(SERVICES["caddy"]["healthcheck"]["test"])
    for design in design_names():
        site = (DEPLOY_DIR / "caddy" / f"{design}.caddy").read_text()
        assert f"health_uri {READINESS_PATH}" in site


def test_infrastructure_has_healthchecks_and_apps_wait_for_them():
    for name in ("redis", "postgres-0", "postgres-1", "kafka", "toxiproxy"):
        assert "healthcheck" in SERVICES[name], name
    for component in _local_plan().apps:
        depends = SERVICES[component.name]["depends_on"]
        for part in ("redis", "postgres-0", "postgres-1", "kafka"):
            assert depends[part]["condition"] == "service_healthy"


def test_caddy_gets_the_same_variables():
    caddy = _local_plan().balancer
    compose_env = SERVICES["caddy"]["environment"]
    assert {k for k in caddy.env if not k.startswith("XDG_")} <= set(compose_env)
    upstreams = compose_env["SHORTENER_UPSTREAMS"].split()
    assert [u.split(":")[0] for u in upstreams] == [f"shortener-{i}" for i in range(1, len(upstreams) + 1)]


def test_toxiproxy_sits_in_front_of_every_part():
    proxies = {p["name"]: p for p in json.loads((DEPLOY_DIR / "toxiproxy.json").read_text())}
    assert set(proxies) == {"redis", "postgres-0", "postgres-1", "kafka"}
    env = SERVICES["shortener-1"]["environment"]
    for name, proxy in proxies.items():
        port = proxy["listen"].rsplit(":", 1)[1]
        assert f"toxiproxy:{port}" in " ".join(str(v) for v in env.values()), name


def test_grafana_dashboard_has_the_promised_panels():
    dashboard = json.loads((DEPLOY_DIR / "grafana" / "dashboards" / "lab.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in ("http_requests_total", "http_request_duration_seconds_bucket", "cache_hits_total",
                   "cache_misses_total", 'status=~"5.."', "db_pool_in_use", "kafka_consumer_lag",
                   "ws_connections", "ws_deliveries_total", "ws_delivery_lag_seconds_bucket",
                   "ws_ack_duration_seconds_bucket", "ws_slow_disconnects_total", "ws_error_frames_total",
                   "shop_checkouts_total", "shop_shard_queries_total", "shop_reservations_held", "shop_outbox_backlog",
                   "shop_shard_map_version"):
        assert metric in exprs, metric
    assert Path(REPO_ROOT / "deploy" / "Dockerfile").exists()


def test_grafana_panels_are_laid_out_without_overlap():
    panels = json.loads((DEPLOY_DIR / "grafana" / "dashboards" / "lab.json").read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (p["title"], cells.get((x, y)))
                cells[x, y] = p["title"]


def _exported_metric_names() -> set[str]:
    """Every sample name the designs' collectors export (with a sample in each labelled family)."""
    from types import SimpleNamespace

    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from messaging.metrics import (
        GatewayCollector,
        GatewayStats,
        ack_latency,
        delivery_lag,
    )
    from services.metrics import ClientGauges, HttpMetrics
    from shop.consumers import WorkerCollector
    from shop.metrics import ShopCollector
    from shortener.metrics import ShortenerCollector

    http = HttpMetrics("any")
    http.observe("GET", "/", 200, 0.01)
    registry = http.registry
    stats = GatewayStats()
    stats.frames_in["send"] += 1
    stats.errors["bad_frame"] += 1
    registry.register(GatewayCollector("messaging-gateway", stats))
    ack_latency(registry).labels("messaging-gateway").observe(0.01)
    delivery_lag(registry).labels("messaging-gateway").observe(0.01)
    registry.register(ClientGauges("any", shards=SimpleNamespace(pool_use=lambda: [(1, 10)]),
                                   consumers=[SimpleNamespace(lag=lambda: {"topic": 3})]))
    breaker = SimpleNamespace(state="closed")
    shortener = SimpleNamespace(stats=SimpleNamespace(local_hits=0, redis_hits=0, misses=0, db_reads=0,
                                                      cache_errors=0, collisions=0, rate_limited=0,
                                                      limiter_errors=0),
                                coalesced=0, redis_breaker=breaker, db_breaker=breaker, local={})
    registry.register(ShortenerCollector("shortener", shortener))
    router = SimpleNamespace(fenced_writes=0, map_reloads=0, _map=SimpleNamespace(version=1), queries={0: 1})
    wiring = SimpleNamespace(router=router, service=SimpleNamespace(cache_hits=0, cache_misses=0),
                             saga=SimpleNamespace(outcomes={"paid": 1}, stock_tries={"gate_refused": 1}))
    registry.register(ShopCollector(wiring))
    relay, sweeper = SimpleNamespace(relayed=0), SimpleNamespace(recovered=0, reservations={}, gauges={0: (0, 0)})
    registry.register(WorkerCollector(relay, sweeper, SimpleNamespace(marked=0), SimpleNamespace(paid=0)))
    text = generate_latest(registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def _metric_names(expr: str) -> set[str]:
    """The series a PromQL expression reads: identifiers that are not functions, labels or durations."""
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without)\s*\([^)]*\)", "", expr)
    return {name for name in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare)}


def test_grafana_panels_read_metrics_the_services_export():
    """A renamed metric (or a counter queried without prometheus_client's ``_total``) leaves a panel
    empty without any error; each name a panel queries must be one the collectors export."""
    dashboard = json.loads((DEPLOY_DIR / "grafana" / "dashboards" / "lab.json").read_text())
    exported = _exported_metric_names()
    queried = {name for p in dashboard["panels"] for t in p.get("targets", []) for name in _metric_names(t["expr"])}
    assert {"ws_connections", "ws_delivery_lag_seconds_bucket", "kafka_consumer_lag"} <= queried
    assert queried <= exported, sorted(queried - exported)

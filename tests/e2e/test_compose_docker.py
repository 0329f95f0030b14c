"""Compose mode for real: every design under docker compose with the stand-in images, driven by ``sdlab``.

Starts ``dockerd`` when none runs and it can (root, Debian's ``docker.io``, which ``make test``
installs) and stops it, with its ``containerd``, after the last test; an engine that was already
running is left running. Skips with the reason where no engine can run. The images are built once
(the first ``up`` of a machine builds them, later runs reuse them).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.compose_deployment import compose_deployment
from tests.support.engine import Engine, engine_problem

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]
PORTS = {"shortener": 8080, "messaging": 8081, "shop": 8082}


@pytest.fixture(scope="module")
def engine():
    """The Docker engine, acquired when the first test runs (not at collection) and released after the last."""
    engine = Engine()
    problem = engine_problem(engine)
    if problem is not None:
        pytest.skip(f"compose test skipped: {problem}")
    try:
        yield engine
    finally:
        engine.release()


@pytest.fixture(scope="module")
def deployment(engine, tmp_path_factory):
    with compose_deployment(tmp_path_factory.mktemp("compose"), f"sdlab-e2e-{os.getpid()}") as lab:
        yield lab


def _url(design: str) -> str:
    return f"http://127.0.0.1:{PORTS[design]}"


def _shortener_smoke() -> None:
    with httpx.Client(base_url=_url("shortener"), timeout=10) as client:
        created = client.post("/api/v1/links", json={"url": f"https://example.com/{uuid.uuid4().hex}"})
        assert created.status_code == 201, created.text
        redirect = client.get(f"/{created.json()['code']}")
        assert redirect.status_code == 302 and redirect.headers["location"] == created.json()["url"]


async def _messaging_smoke() -> None:
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=_url("messaging"), timeout=10) as client:
        ta, tb = [(await client.post("/api/v1/sessions", json={"user": f"{u}_{tag}"})).json()["token"] for u in "ab"]
        conversation = (await client.post("/api/v1/conversations", json={"members": [f"b_{tag}"]},
                                          headers={"Authorization": f"Bearer {ta}"})).json()
    ws = _url("messaging").replace("http://", "ws://") + "/ws?token="
    async with connect(ws + ta) as a, connect(ws + tb) as b:
        await asyncio.sleep(0.3)  # routes registered
        await a.send(json.dumps({"type": "send", "conversation_id": conversation["id"], "client_msg_id": "m1",
                                 "text": "over compose"}))
        for socket, kind in ((a, "ack"), (b, "message")):
            while (frame := json.loads(await asyncio.wait_for(socket.recv(), 10)))["type"] != kind:
                pass
            assert frame["seq"] == 1


def _shop_smoke() -> None:
    with httpx.Client(base_url=_url("shop"), timeout=10) as client:
        admin = client.post("/api/v1/sessions", json={"user": "admin"}).json()["token"]
        product = client.post("/api/v1/products", json={"name": "compose mug", "category": "mugs", "price_cents": 900,
                                                        "stock": 3}, headers={"Authorization": f"Bearer {admin}"})
        assert product.status_code == 201, product.text
        buyer = client.post("/api/v1/sessions", json={"user": f"b{uuid.uuid4().hex[:8]}"}).json()["token"]
        order = client.post("/api/v1/checkout", json={"items": [{"product_id": product.json()["id"], "quantity": 2}]},
                            headers={"Authorization": f"Bearer {buyer}", "Idempotency-Key": uuid.uuid4().hex})
        assert order.status_code == 201 and order.json()["status"] == "paid", order.text
        read = client.get(f"/api/v1/orders/{order.json()['order_id']}", headers={"Authorization": f"Bearer {buyer}"})
        assert read.status_code == 200


def _smoke_all() -> None:
    _shortener_smoke()
    asyncio.run(_messaging_smoke())
    _shop_smoke()


def test_every_design_answers_through_the_balancer_and_status_sees_every_container(deployment):
    _smoke_all()
    rows = {r["name"]: r for r in deployment.status()["components"]}
    assert {"redis", "postgres-0", "postgres-1", "kafka", "caddy", "prometheus", "shortener-1", "messaging-gateway-1",
            "shop-1", "shop-payments-1", "shop-worker-1", "shop-fulfillment-1"} <= set(rows)
    assert {n: r["state"] for n, r in rows.items() if r["state"] != "ready"} == {}
    logs = deployment.run("logs", "shop-1", "-n", "5")
    assert logs.stdout.strip(), "no log lines from shop-1"


def test_top_reads_container_usage_and_every_services_metrics(deployment):
    _shortener_smoke()
    frame = json.loads(deployment.run("top", "--once", "--json", timeout=60).stdout)
    usage = {c["name"]: c for c in frame["components"]}
    assert usage["postgres-0"]["rss_mib"] > 0 and usage["shortener-1"]["cpu_percent"] is not None
    services = {s["name"]: s for s in frame["services"]}
    assert services["shortener-1"]["rps"] is not None, "no /metrics scraped from the container"


def test_an_experiment_loads_from_the_host_and_recreates_the_designs_services_for_its_variant(deployment):
    """shop.saga-failure: a variant's environment (a 20% decline rate) recreates the shop's services,
    the fault schedule kills and restarts a container, and the checks read the shards from the host."""
    run = deployment.run("experiment", "shop.saga-failure", "--duration", "8", timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "recreating" in run.stdout and "SHOP_PAYMENTS_DECLINE_RATE" in run.stdout
    assert "kill: shop-payments-1 (docker compose kill" in run.stdout
    (summary_path,) = Path(deployment.env["SDLAB_RESULTS"]).glob("*-experiment-shop.saga-failure/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["requests"] > 50 and summary["instances_scraped"], "no load or no /metrics from the containers"
    env = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}",
                                     f"{deployment.env['COMPOSE_PROJECT_NAME']}-shop-payments-1-1"],
                                    capture_output=True, text=True).stdout)
    assert not any(e.startswith("SHOP_PAYMENTS_DECLINE_RATE=") for e in env), "the variant's setting outlived it"


def test_killing_one_instance_of_each_design_leaves_the_balancer_routing_around_it(deployment):
    victims = ["shortener-1", "messaging-1", "messaging-gateway-1", "shop-1"]
    for name in victims:
        deployment.run("chaos", "kill", name)
    rows = {r["name"]: r["state"] for r in deployment.status()["components"]}
    assert {rows[n] for n in victims} == {"down"}
    for _ in range(5):  # each request lands on a live instance: Caddy retries and its health checks drop the dead
        _smoke_all()
    assert "restart: shop-1" in deployment.run("chaos", "restart", "shop-1", timeout=180).stdout


def test_the_commands_refuse_what_compose_mode_cannot_do(deployment):
    sized = deployment.run("experiment", "shop.shard-scaling", check=False)
    assert sized.returncode == 2 and "local mode" in sized.stderr
    throttle = deployment.run("chaos", "throttle", "redis", check=False)
    assert throttle.returncode == 2 and "local mode only" in throttle.stderr
    local = deployment.run("up", "shop", check=False)
    assert local.returncode == 2 and "compose deployment is recorded" in local.stderr

"""``sdlab load --target URL``: the plumbing, without a deployment (the run itself: tests/e2e/test_load_target.py).

What is refused and how, which seeding path each design takes at a target, which checks run and
which are skipped (each named with its reason), and what the summary and the report say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.messaging import plugin as messaging_plugin
from loadtests.messaging.seed import ws_url
from loadtests.shop import checks as shop_checks
from loadtests.shop import plugin as shop_plugin
from loadtests.shortener import plugin as shortener_plugin
from services.lab.cli import entry as cli
from services.lab.config import LabSettings
from services.lab.contract import (
    Check,
    DesignPlugin,
    LoadResult,
    LoadSpec,
    RunContext,
    Verification,
)
from services.lab.errors import LabCommandError
from services.lab.measure import load, target_load
from services.lab.report import charts as report


def _ctx(tmp_path: Path, design: str, target: str | None = "http://deploy.example:80/", state=None) -> RunContext:
    return RunContext(LabSettings(home=tmp_path / "home"), state, design, tmp_path, lambda _line: None, target=target)


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://host", "http://", "http://host/?q=1", "localhost"])
def test_a_target_must_be_a_base_url(url):
    with pytest.raises(LabCommandError, match="--target wants the deployment's base URL"):
        target_load.check_target(url)


def test_a_target_loses_its_trailing_slash():
    assert target_load.check_target("https://shop.example.com/") == "https://shop.example.com"
    assert target_load.check_target("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert _ctx(Path("."), "shortener").base_url == "http://deploy.example:80"


def test_faults_are_refused_at_a_target_in_one_line():
    with pytest.raises(LabCommandError) as refused:
        target_load.check_target_spec(LoadSpec("shortener", faults="at 2s kill redis"))
    assert str(refused.value) == target_load.FAULTS_REFUSED and "\n" not in target_load.FAULTS_REFUSED
    target_load.check_target_spec(LoadSpec("shortener"))  # no faults: nothing to refuse


def test_the_command_line_refuses_before_it_writes_or_looks_for_a_stack(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SDLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SDLAB_RESULTS", str(tmp_path / "results"))
    for args, needle in ((["--target", "nowhere"], "--target wants the deployment's base URL"),
                         (["--target", "http://x:1", "--compose"], "--target and --compose name two deployments"),
                         (["--target", "http://x:1", "--faults", "at 1s kill redis"], "--faults needs a stack")):
        assert cli.main(["load", "shortener", *args]) == 2, args
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results").exists() and not (tmp_path / "home").exists()


def test_the_shortener_seeds_through_the_api_at_a_target_and_in_bulk_on_the_lab(tmp_path, monkeypatch):
    calls = []

    async def through_api(host, count, progress=print):
        calls.append(("api", host))
        return [{"code": f"c{i}", "url": f"u{i}"} for i in range(count)]

    async def direct(url, count):
        calls.append(("db", url))
        return [{"code": f"c{i}", "url": f"u{i}"} for i in range(count)]

    monkeypatch.setattr(shortener_plugin, "seed_through_api", through_api)
    monkeypatch.setattr(shortener_plugin, "seed_direct", direct)
    monkeypatch.setattr(shortener_plugin, "link_store_url", lambda state: "postgresql://lab/links")
    record = shortener_plugin.PLUGIN.seed(_ctx(tmp_path, "shortener"), LoadSpec("shortener", seed_count=3))
    assert calls == [("api", "http://deploy.example:80")] and len(record["links"]) == 3
    assert record["host"] == "http://deploy.example:80"

    class State:
        ports = {"shortener": 8080}

    calls.clear()
    shortener_plugin.PLUGIN.seed(_ctx(tmp_path, "shortener", target=None, state=State()), LoadSpec("shortener", seed_count=3))
    assert calls == [("db", "postgresql://lab/links")]


def test_a_target_that_refuses_most_creates_fails_the_seed_in_one_line(tmp_path, monkeypatch):
    async def through_api(host, count, progress=print):
        return [{"code": "c0", "url": "u0"}]

    monkeypatch.setattr(shortener_plugin, "seed_through_api", through_api)
    with pytest.raises(LabCommandError, match="created only 1 of 10 links"):
        shortener_plugin.PLUGIN.seed(_ctx(tmp_path, "shortener"), LoadSpec("shortener", seed_count=10))


def test_messaging_at_a_target_sends_every_client_through_its_balancer(tmp_path, monkeypatch):
    async def seed(base_url, users, sizes):
        return {"host": base_url, "ws_url": ws_url(base_url), "users": [], "conversations": []}

    monkeypatch.setattr(messaging_plugin, "seed", seed)
    record = messaging_plugin.PLUGIN.seed(_ctx(tmp_path, "messaging", target="https://chat.example"),
                                          LoadSpec("messaging", seed_count=4))
    assert "gateway_ws_urls" not in record and record["ws_url"] == "wss://chat.example/ws"
    assert ws_url("http://127.0.0.1:8081") == "ws://127.0.0.1:8081/ws"


def test_the_shop_seeds_products_as_the_admin_it_is_told(tmp_path, monkeypatch):
    seen = {}

    async def seed(base_url, products, users, stock, flash_stock, admin):
        seen.update(base_url=base_url, admin=admin)
        return {}

    monkeypatch.setattr(shop_plugin, "seed", seed)
    shop_plugin.PLUGIN.seed(_ctx(tmp_path, "shop"), LoadSpec("shop", seed_count=2))
    assert seen == {"base_url": "http://deploy.example:80", "admin": "admin"}
    shop_plugin.PLUGIN.seed(_ctx(tmp_path, "shop"), LoadSpec("shop", seed_count=2, options={"admin": "ops"}))
    assert seen["admin"] == "ops"


def _all_ok_shop_figures() -> dict:
    return {"oversold_products": [], "unconserved_products": [], "sold_not_paid": [], "unreadable_acked_count": 0,
            "acknowledged": 3, "duplicate_key_orders": 0, "double_charged": 0, "paid_without_charge": 0,
            "charged_not_paid": 0, "charges_captured": 3, "paid_orders": 3, "pending_orders": 0, "outbox_backlog": 0,
            "events_missing": 0, "events_handled_twice": 0}


def test_every_shop_check_either_runs_through_the_api_or_is_skipped_with_a_reason():
    every = {c.description for c in shop_checks.checks(_all_ok_shop_figures())}
    assert set(shop_checks.DIRECT_CHECKS) | {shop_checks.READABLE} == every
    assert shop_checks.READABLE not in shop_checks.DIRECT_CHECKS
    assert all(reason and "\n" not in reason for reason in shop_checks.DIRECT_CHECKS.values())
    assert shop_plugin.PLUGIN.direct_checks is shop_checks.DIRECT_CHECKS
    # The other designs check only through their API: nothing of theirs is skipped.
    assert shortener_plugin.PLUGIN.direct_checks == {} and messaging_plugin.PLUGIN.direct_checks == {}


def test_the_shop_at_a_target_reads_orders_back_and_waits_for_pending_ones(tmp_path, monkeypatch):
    (tmp_path / "seed.json").write_text(json.dumps({"users": [{"user": "b1", "token": "t1"}]}))
    acks = [{"event": "attempted", "user": "b1"},
            {"event": "acknowledged", "user": "b1", "order_id": 1, "status": 201},
            {"event": "acknowledged", "user": "b1", "order_id": 2, "status": 202},
            {"event": "acknowledged", "user": "b1", "order_id": 3, "status": 201}]
    (tmp_path / "acks.jsonl").write_text("".join(json.dumps(a) + "\n" for a in acks))
    reads: list[list[int]] = []

    async def readable(base_url, tokens, acked):
        assert base_url == "http://deploy.example:80" and tokens == {"b1": "t1"}
        reads.append([a["order_id"] for a in acked])
        # Both read as pending at first; then order 2 has settled and order 3 is not found.
        return [(a["order_id"], "status pending" if len(reads) == 1 else "404 not found")
                for a in acked if a["order_id"] == 3 or (a["order_id"] == 2 and len(reads) == 1)]

    monkeypatch.setattr(shop_checks, "_readable", readable)
    result = LoadResult(tmp_path, {"spec": {"design": "shop"}, "endpoints": {}})
    verification = shop_plugin.PLUGIN.verify(_ctx(tmp_path, "shop"), result)
    assert reads == [[1, 2, 3], [2, 3]]  # a 404 is not read again
    assert verification.figures["acknowledged"] == 3 and verification.figures["unreadable_acked_count"] == 1
    assert [c.description for c in verification.checks] == [shop_checks.READABLE]
    assert not verification.checks[0].passed and "404 not found" in verification.checks[0].detail


class _Plugin(DesignPlugin):
    direct_checks = {"stock conserved": "reads every shard"}

    def verify(self, ctx, result):
        return Verification({"lost": 0}, [Check("acknowledged read back", True, "3 acknowledged, 0 lost")])


def test_verify_names_each_skipped_check_at_a_target_only(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "plugin_for", lambda design: _Plugin())
    said: list[str] = []
    result = LoadResult(tmp_path, {"spec": {"design": "x"}, "skipped": [{"description": "table sizes", "reason": "r"}]})
    ctx = RunContext(LabSettings(home=tmp_path), None, "x", tmp_path, said.append, target="http://t")
    load.verify_in(ctx, result)
    assert result.summary["skipped"] == [{"description": "table sizes", "reason": "r"},
                                         {"description": "stock conserved", "reason": "reads every shard"}]
    assert "  [-] stock conserved: skipped, reads every shard" in said
    assert json.loads((tmp_path / "summary.json").read_text())["checks"][0]["passed"]
    on_the_lab = LoadResult(tmp_path, {"spec": {"design": "x"}})
    load.verify_in(RunContext(LabSettings(home=tmp_path), None, "x", tmp_path, said.append), on_the_lab)
    assert "skipped" not in on_the_lab.summary


class _Driver:
    kind, offered, env = "locust", "2 users", {}

    def start(self, t0_wall, cwd):
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
        return self.proc

    def pending_checkpoint(self):
        return None

    def take(self):
        return [{"t": 0, "requests": 4, "failures": 0, "p50_ms": 1.0, "p99_ms": 2.0, "users": 2, "by_name": {}}]

    def finish(self):
        self.proc.wait()
        return [{"t": 1, "requests": 5, "failures": 0, "p50_ms": 1.0, "p99_ms": 2.0, "users": 2, "by_name": {}}]

    def totals(self, rows):
        return {"total": {"requests": 9, "failures": 0, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 2.0},
                "endpoints": {"/x": {"requests": 9, "failures": 0}}}


class _Seeding(DesignPlugin):
    def seed(self, ctx, spec, previous=None):
        assert ctx.state is None and ctx.target == "http://t:1" and previous is None
        return {"host": ctx.base_url}


def test_a_target_run_keeps_the_generator_s_figures_and_names_what_it_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(target_load, "plugin_for", lambda design: _Seeding())
    monkeypatch.setattr(target_load, "generator_for", lambda *args: _Driver())
    result = target_load.run_target_load(LabSettings(home=tmp_path / "home", results=tmp_path), LoadSpec("x", duration_s=2),
                                         "http://t:1/", say=lambda _line: None, out=tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["target"] == "http://t:1" and summary["requests"] == 9 and summary["server"] == {}
    assert [s["description"] for s in summary["skipped"]] == [s.description for s in target_load.TARGET_SKIPS]
    assert json.loads((tmp_path / "run" / "seed.json").read_text()) == {"host": "http://t:1"}
    assert all("load-generator" in row["cpu"] for row in result.timeline if row["cpu"])
    assert not (tmp_path / "home").exists()  # no lab state is read or written
    chart = tmp_path / "run" / "timeline.png"
    chart.write_bytes(b"")
    text = report.load_report({**result.summary, "checks": []}, tmp_path / "run", chart).read_text()
    assert "- Target: http://t:1" in text
    assert "- skipped: table sizes (needs direct PostgreSQL access)" in text

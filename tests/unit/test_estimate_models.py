"""Each design's estimate model (loadtests/<design>/estimate.py): where its benchmark records its costs,
and which components they size; and ``sdlab estimate`` end to end on a run folder (no stack)."""

from __future__ import annotations

import json

import pytest

from loadtests.messaging.estimate import MessagingEstimate
from loadtests.shop.estimate import ShopEstimate
from loadtests.shortener.estimate import ShortenerEstimate
from services.lab.cli import entry as cli
from services.lab.estimate.fleet import Measured, workload


def _work(rate: float = 1000, read_write=(9, 1), **changes):
    given = dict(rate=rate, daily_users=None, actions_per_user=10, read_write=read_write, peak_factor=1,
                 payload_bytes=100, retention_years=1, utilisation=0.5)
    return workload(**{**given, **changes})


def _cost(op: str, core_ms: dict, statements: float = 1.0) -> dict:
    return {"op": op, "ops": 100, "core_ms": core_ms, "pg_statements": statements}


def _lines(model, work, summary: dict) -> dict:
    lines, _ = model.plan(work, Measured(model.costs(summary), summary, []))
    return {line.component: line for line in lines}


SHORTENER_BENCH = {
    "command": "sdlab bench shortener", "machine": {"commit": "c0ffee", "cpu_model": "CPU", "cores": 2},
    "redirect_cost": _cost("redirect", {"shortener-1": 0.05, "caddy": 0.0, "postgres-0": 0.0}, 0.0),
    "create_cost": _cost("create", {"shortener-1": 1.0, "shortener-analytics-1": 0.1, "postgres-0": 0.5}),
    "tables": {"links": {"rows": 1000, "bytes": 300_000}},
}


def test_the_shortener_sizes_instances_from_both_and_primaries_from_creates():
    lines = _lines(ShortenerEstimate(), _work(read_write=(9, 1)), SHORTENER_BENCH)
    # 900 redirects/s × 0.05 + 100 creates/s × 1.0 = 145 core-ms/s = 0.145 cores ÷ 0.5 → 1
    assert lines["API instances"].cores == pytest.approx(0.145) and lines["API instances"].count == 1
    assert lines["PostgreSQL primaries (1-core shards)"].cores == pytest.approx(0.05)
    assert lines["PostgreSQL statements"].count == 100
    storage = lines["PostgreSQL storage (links)"]
    assert storage.measured and "÷ 1,000 links rows = 300 B (measured" in storage.arithmetic


def test_the_shortener_reads_a_load_run_of_one_operation():
    run = {"spec": {"design": "shortener"}, "cost_per_op": _cost("redirect", {"shortener-1": 0.1, "shortener-2": 0.1})}
    assert list(ShortenerEstimate().costs(run)) == ["redirect"]


MESSAGING_BENCH = {
    "command": "sdlab bench messaging", "message_core_ms_by_component": {
        "messaging-gateway-1": 0.3, "messaging-gateway-2": 0.3, "messaging-fanout-1": 0.2, "messaging-1": 0.01,
        "postgres-0": 0.2, "kafka": 0.5},
    "message_core_ms": 1.51, "message_pg_statements": 1.0, "e2e_deliveries_per_message": 2.0,
    "kib_per_idle_connection": 16.0, "connections_held": 10_000, "fanout_deliveries_per_s": 100_000,
}


def test_messaging_prices_extra_deliveries_and_holds_connections():
    work = _work(rate=None, read_write=(0, 1), daily_users=1_000_000, actions_per_user=86.4,
                 options={"members": "12", "online": "0.2"})
    lines = _lines(MessagingEstimate(), work, MESSAGING_BENCH)
    gateways = lines["gateways (CPU or connections, the larger)"]
    # 1,000 messages/s × 0.6 + 1,000 × 10 extra deliveries × 0.01 = 700 core-ms/s = 0.7 cores ÷ 0.5 → 2;
    # 200,000 connections ÷ 10,000 = 20: the larger
    assert gateways.cores == pytest.approx(0.7) and gateways.count == 20
    assert lines["gateway memory (idle connections)"].count == round(200_000 * 16 * 1024 / 2**30, 2)
    # fan-out: 12,000 deliveries/s × (0.2 ÷ 2) core-ms = 1.2 cores ÷ 0.5 → 3
    assert lines["fan-out workers"].cores == pytest.approx(1.2) and lines["fan-out workers"].count == 3
    assert lines["Kafka partitions (message topic)"].count == 3


def test_messaging_without_connections_says_how_to_give_them():
    lines, assumptions = MessagingEstimate().plan(_work(read_write=(0, 1)),
                                                  Measured(MessagingEstimate().costs(MESSAGING_BENCH), MESSAGING_BENCH, []))
    assert lines[0].component == "gateways" and any("--option connections" in a for a in assumptions)


SHOP_BENCH = {
    "command": "sdlab bench shop",
    "checkout_runs": {"1": {"cost": _cost("checkout", {"shop-1": 9.0})},
                      "2": {"cost": _cost("checkout", {"shop-1": 2.0, "shop-2": 2.0, "postgres-0": 0.6,
                                                       "postgres-1": 0.6, "shop-worker-1": 0.2}, 5.0)}},
    "read_cost": _cost("read", {"shop-1": 0.5, "shop-2": 0.5, "postgres-0": 0.1}, 1.0),
}


def test_the_shop_takes_the_run_with_the_most_shards_and_sizes_shards_from_checkouts():
    costs = ShopEstimate().costs(SHOP_BENCH)
    assert costs["checkout"]["core_ms"]["shop-1"] == 2.0 and "read" in costs
    lines = _lines(ShopEstimate(), _work(read_write=(9, 1)), SHOP_BENCH)
    # 900 reads/s × 1.0 + 100 checkouts/s × 4.0 = 1.3 cores ÷ 0.5 → 3
    assert lines["API instances"].count == 3
    assert lines["PostgreSQL shards (1-core primaries)"].cores == pytest.approx(0.12)
    assert lines["PostgreSQL read replicas"].cores == pytest.approx(0.09)
    assert lines["PostgreSQL statements"].count == 900 + 500


def _bench_folder(tmp_path, summary: dict):
    folder = tmp_path / "20260101-000000-bench-shortener"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_the_command_prints_a_plan_from_a_run_folder(tmp_path, capsys):
    folder = _bench_folder(tmp_path, SHORTENER_BENCH)
    assert cli.main(["estimate", "shortener", "--rate", "1000", "--read-write", "9:1", "--from", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "## Fleet for shortener" in out and "commit c0ffee" in out and "| API instances | 1 process |" in out
    assert cli.main(["estimate", "shortener", "--rate", "1000", "--from", str(folder), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["runs"][0]["path"] == str(folder) and plan["workload"]["read_weight"] == 100  # the design's 100:1


def test_the_command_finds_the_newest_run_under_results(tmp_path, capsys, monkeypatch):
    _bench_folder(tmp_path, SHORTENER_BENCH)
    monkeypatch.setenv("SDLAB_RESULTS", str(tmp_path))
    assert cli.main(["estimate", "shortener", "--daily-users", "1e6"]) == 0
    assert "20260101-000000-bench-shortener" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--rate", "0"], "--rate must be a positive"),
    (["--rate", "10", "--read-write", "ten:1"], "--read-write takes READ:WRITE"),
    (["--rate", "10", "--option", "members=2"], "has no estimate knob members"),
    (["--rate", "10"], "no measured cost of redirect or create for shortener"),
])
def test_bad_input_is_one_line_and_exit_2(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SDLAB_RESULTS", str(tmp_path))
    assert cli.main(["estimate", "shortener", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_a_messaging_knob_must_be_a_number(capsys):
    assert cli.main(["estimate", "messaging", "--rate", "10", "--option", "members=lots"]) == 2
    assert "a positive number is needed" in capsys.readouterr().err

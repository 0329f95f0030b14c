"""``sdlab evidence --remeasure``: every reference run's own command again, its run copied over its evidence."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from services.lab.config import LabSettings
from services.lab.machine import changed_files
from services.lab.report import remeasure
from services.lab.report.evidence import EVIDENCE_ROOT


def _evidence(root: Path, label: str, command: str | None) -> Path:
    folder = root / label
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"command": command} if command else {}))
    (folder / "report.md").write_text("old\n")
    return folder


def test_every_folder_runs_its_own_command_and_baselines_are_kept(tmp_path):
    _evidence(tmp_path, "shop/reshard", "sdlab experiment shop.reshard")
    _evidence(tmp_path, "shortener/cost/after-create", "sdlab load shortener --open --rate 200 --read-write 0:1")
    _evidence(tmp_path, "shortener/cost/before-create", "sdlab load shortener --open --rate 200")
    _evidence(tmp_path, "messaging/odd", None)
    _evidence(tmp_path, "shortener/open-300", "sdlab load shortener --open --rate 300")
    items, skipped = remeasure.plan(tmp_path)
    assert [(i.label(tmp_path), i.command) for i in items] == [
        ("shop/reshard", ["experiment", "shop.reshard"]), ("shortener/open-300", ["load", "shortener", "--open", "--rate", "300"])]
    # the after of a before/after pair stays with its baseline: re-measured alone it would compare two sittings
    assert [label for label, _ in skipped] == ["messaging/odd", "shortener/cost/after-create", "shortener/cost/before-create"]
    only, _ = remeasure.plan(tmp_path, only="shop/*")
    assert [i.label(tmp_path) for i in only] == ["shop/reshard"]
    ordered, _ = remeasure.plan(tmp_path, only=["shortener/*", "shop/*", "nothing/*"])
    assert [i.label(tmp_path) for i in ordered] == ["shortener/open-300", "shop/reshard"]


def test_a_relative_results_folder_is_made_whole(tmp_path, monkeypatch):
    """k6 opens the seed file under the results folder relative to its script: a relative
    SDLAB_RESULTS made every k6 run of a re-measurement die at start (exit 107)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDLAB_RESULTS", "runs")
    assert LabSettings().results == tmp_path.resolve() / "runs"


def test_each_new_run_replaces_its_evidence_and_a_run_that_made_nothing_leaves_it(tmp_path):
    root = tmp_path / "evidence"
    _evidence(root, "shop/reshard", "sdlab experiment shop.reshard")
    _evidence(root, "shop/flash-sale", "sdlab experiment shop.flash-sale")
    calls = []

    def runner(args, env):
        calls.append((args, env["SDLAB_RESULTS"]))
        if args[1] == "shop.reshard":  # a run that finished (and failed its checks)
            run = Path(env["SDLAB_RESULTS"]) / "20261207-experiment-shop.reshard"
            run.mkdir()
            (run / "summary.json").write_text(json.dumps({"passed": False, "command": "sdlab experiment shop.reshard"}))
            (run / "report.md").write_text("new\n")
            (run / "acks.jsonl").write_text("raw\n")
            return 1
        return 2  # died before making a run folder

    said = []
    outcomes = remeasure.run_all(remeasure.plan(root)[0], tmp_path / "scratch", said.append, root=root, runner=runner)
    assert [(o["evidence"], o["exit"], o["passed"]) for o in outcomes] == [
        ("shop/flash-sale", 2, None), ("shop/reshard", 1, False)]
    assert (root / "shop/reshard/report.md").read_text() == "new\n"
    assert not (root / "shop/reshard/acks.jsonl").exists()  # raw output stays in results/
    assert (root / "shop/flash-sale/report.md").read_text() == "old\n"
    assert len({results for _, results in calls}) == 2  # a results folder per run
    assert said[0].startswith("1/2 shop/flash-sale: sdlab experiment shop.flash-sale")


def test_the_repositorys_evidence_names_its_commands():
    items, skipped = remeasure.plan(EVIDENCE_ROOT)
    assert len(items) >= 30
    assert all(why.startswith(("a before/after baseline", "the after of a before/after pair")) for _, why in skipped), skipped


def test_a_load_run_gets_a_fresh_stack_of_its_design_and_an_experiment_starts_its_own(tmp_path):
    root = tmp_path / "evidence"
    _evidence(root, "shortener/open-300", "sdlab load shortener --open --rate 200 --duration 30")
    _evidence(root, "shop/reshard", "sdlab experiment shop.reshard")
    calls = []

    def runner(args, env):
        calls.append(args)
        return 1 if args == ["up", "shortener"] else 0

    outcomes = remeasure.run_all(remeasure.plan(root)[0], tmp_path / "scratch", lambda line: None, root=root,
                                 runner=runner)
    # the experiment alone; the load run's stack did not start, so no load, and the stack is taken down
    assert calls == [["experiment", "shop.reshard"], ["up", "shortener"], ["down"]]
    assert [o["exit"] for o in outcomes] == [0, 1]


def test_evidence_copied_in_does_not_make_the_commit_dirty(tmp_path):
    """The re-measurement at 2a51ccb copied each run into docs/evidence as it went, and every later run
    named its commit '+dirty' although the code was the commit's."""
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "docs/evidence/x").mkdir(parents=True)
    (tmp_path / "docs/evidence/x/summary.json").write_text("{}")
    (tmp_path / "code.py").write_text("A = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    (tmp_path / "docs/evidence/x/summary.json").write_text('{"new": 1}')
    assert changed_files(tmp_path) == ""
    (tmp_path / "code.py").write_text("A = 2\n")
    assert "code.py" in changed_files(tmp_path)

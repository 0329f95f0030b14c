"""``sdlab evidence RUN_DIR``: copy a reference run into ``docs/evidence/<design>/<experiment>/``.

What a reader needs to see the result on the repository's web page: ``report.md``, its PNG
charts, ``summary.json`` (machine, commit, command, every figure) and wrk's own text output.
Raw generator output (CSVs, k6's HTML, acknowledgement logs, per-variant folders) stays in
``results/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from services.lab.config import REPO_ROOT
from services.lab.errors import LabCommandError

EVIDENCE_ROOT = REPO_ROOT / "docs" / "evidence"
KEPT = ("report.md", "summary.json")


def _identify(run: Path) -> tuple[str, str]:
    """(design, name) of a run folder: an experiment's ``design.name``, a bench's ``bench``."""
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LabCommandError(f"{run} is not a finished run (no readable summary.json: {exc})") from None
    if "experiment" in summary:
        design, _, name = summary["experiment"].partition(".")
        return design, name
    # A benchmark's folder is <time>-bench-<design>; its figures are the design's own.
    if "-bench-" in f"-{run.name}" and "spec" not in summary:
        return run.name.split("-bench-", 1)[1], "bench"
    if "spec" in summary and "name" in summary:
        return summary["spec"]["design"], summary["name"]  # a load run
    raise LabCommandError(f"{run} is not a load run, an experiment or a benchmark")


def copy_evidence(run: Path, root: Path = EVIDENCE_ROOT) -> Path:
    run = run.resolve()
    if not run.is_dir():
        raise LabCommandError(f"no run folder at {run}")
    design, name = _identify(run)
    return copy_run(run, root / design / name)


def copy_run(run: Path, target: Path) -> Path:
    """What a reader needs of ``run``, into ``target`` (a newer reference run replaces the old one whole)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in sorted(run.iterdir()):
        if path.name in KEPT or path.suffix == ".png" or (path.name.startswith("wrk-") and path.suffix == ".txt"):
            shutil.copy2(path, target / path.name)
    (target / "SOURCE").write_text(f"copied from {run.name} by `sdlab evidence`\n")
    return target

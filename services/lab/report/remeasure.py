"""``sdlab evidence --remeasure``: run every reference run again, at one commit, and replace its evidence.

Each folder under ``docs/evidence/`` holds the ``summary.json`` of the run it shows, and that
summary names the command that made it. Re-measuring runs each command again, one at a time, on a
clean working tree (so that every new summary names the same commit), and copies each new run over
its folder. A load run gets a fresh stack of its design first (``sdlab up DESIGN``), taken down
after. Folders named ``before-*`` are skipped, and so are the runs beside them: a before/after pair
is measured in one sitting, at the commits before and after its change, or the difference would
measure the machine as much as the change. A run that fails its checks is still copied (the
evidence shows what happened) and listed in the summary at the end.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.lab.config import REPO_ROOT
from services.lab.errors import LabCommandError
from services.lab.machine import changed_files
from services.lab.report.evidence import EVIDENCE_ROOT, copy_run

BASELINE_PREFIX = "before-"


@dataclass(frozen=True)
class Item:
    folder: Path  # under docs/evidence/
    command: list[str]  # sdlab's arguments, without "sdlab"

    def label(self, root: Path) -> str:
        return str(self.folder.relative_to(root))

    def stack(self) -> list[str] | None:
        """The ``up`` a load run needs first (its doc says ``sdlab up DESIGN && sdlab load ...``): a fresh
        stack of that design, taken down after. Experiments and benchmarks start their own."""
        if self.command[:1] != ["load"] or len(self.command) < 2 or "--target" in self.command:
            return None
        return ["up", self.command[1]]


def plan(root: Path = EVIDENCE_ROOT, only: str | list[str] | None = None) -> tuple[list[Item], list[tuple[str, str]]]:
    """(what to run again, what is skipped and why): in the order of the globs in ``only`` (the first
    that matches a folder places it), then by folder."""
    globs = [only] if isinstance(only, str) else list(only or [])
    items, skipped = [], []
    for summary in sorted(root.glob("**/summary.json"), key=lambda s: (_rank(s.parent, root, globs), s)):
        folder = summary.parent
        label = str(folder.relative_to(root))
        if globs and _rank(folder, root, globs) == len(globs):
            continue
        if folder.name.startswith(BASELINE_PREFIX):
            skipped.append((label, "a before/after baseline, kept at the commit before the change"))
            continue
        if any(sibling.name.startswith(BASELINE_PREFIX) for sibling in folder.parent.iterdir()):
            # Re-measured alone, an "after" would be compared with a "before" from another sitting, and
            # the difference would measure the machine as much as the change.
            skipped.append((label, "the after of a before/after pair, kept with its baseline in the sitting that compared them"))
            continue
        command = json.loads(summary.read_text()).get("command") or ""
        words = shlex.split(command)
        if words[:1] != ["sdlab"] or len(words) < 2:
            skipped.append((label, f"its summary names no sdlab command ({command or 'none'})"))
            continue
        items.append(Item(folder, words[1:]))
    return items, skipped


def _rank(folder: Path, root: Path, globs: list[str]) -> int:
    label = str(folder.relative_to(root))
    return next((i for i, glob in enumerate(globs) if fnmatch.fnmatch(label, glob)), len(globs))


def require_clean_tree() -> str:
    """The commit every new run will name; refuses a working tree with changes."""
    if changed_files():  # the evidence it copies in as it goes does not count (a second run may follow)
        raise LabCommandError("the working tree has changes: commit or stash them, so that every run names one commit")
    return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()


def run_all(items: list[Item], scratch: Path, say: Callable[[str], None], root: Path = EVIDENCE_ROOT,
            runner: Callable[[list[str], dict[str, str]], int] | None = None) -> list[dict]:
    """Each item's command in a results folder of its own, its run copied over its evidence."""
    runner = runner or _run_sdlab
    outcomes = []
    for n, item in enumerate(items, 1):
        results = (scratch / f"{n:02d}").resolve()  # absolute: the generators open files under it
        results.mkdir(parents=True, exist_ok=True)
        say(f"{n}/{len(items)} {item.label(root)}: sdlab {shlex.join(item.command)}")
        started = time.monotonic()
        env = {"SDLAB_RESULTS": str(results)}
        stack = item.stack()
        code = runner(stack, env) if stack else 0
        if code == 0:
            code = runner(item.command, env)
        if stack:
            runner(["down"], env)
        runs = sorted(p for p in results.iterdir() if (p / "summary.json").exists())
        outcome = {"evidence": item.label(root), "command": "sdlab " + shlex.join(item.command), "exit": code,
                   "minutes": round((time.monotonic() - started) / 60, 1)}
        if runs:
            copy_run(runs[-1], item.folder)
            outcome["passed"] = json.loads((runs[-1] / "summary.json").read_text()).get("passed")
        else:
            outcome["passed"] = None  # no run folder: nothing copied, the old evidence stays
        say(f"    exit {code}, passed {outcome['passed']}, {outcome['minutes']} min")
        outcomes.append(outcome)
    return outcomes


def _run_sdlab(args: list[str], env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-m", "services.lab.cli", *args], cwd=REPO_ROOT,
                          env={**os.environ, **env}, check=False).returncode

"""A CPU quota per component through Linux cgroups: the lab's stand-in for a small machine each.

cgroup v2 (``cpu.max``) where the unified hierarchy has the cpu controller, else cgroup v1
(``cpu.cfs_quota_us`` in the ``cpu`` hierarchy, usage from its ``cpuacct`` twin). Groups live under
``sdlab/<tag>/<component>``, the tag naming one lab home, so that ``down`` and a crashed stack's
cleanup remove exactly that home's groups. Where no group can be made (not root, no delegation, no
cpu controller) :meth:`CpuGroups.detect` raises :class:`CgroupsUnavailable` with a one-line reason.
:class:`Groups` (making, finding and removing a home's groups) serves the memory groups too
(:mod:`services.lab.budgets.memory_cgroups`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Self

# The scheduler period a quota is counted over. Docker and Kubernetes use 100 ms; a small budget
# over 100 ms lets a process run 5 ms and then stand still 95 ms, so every request it serves waits
# up to a period and a service's own deadlines fire on a machine that is merely small. 20 ms keeps
# that wait short; a quota is at least 1 ms (the kernel's floor), so tinier budgets get longer periods.
PERIOD_US = 20_000
MIN_QUOTA_US = 1_000


def period_for(cores: float) -> int:
    return max(PERIOD_US, min(1_000_000, round(MIN_QUOTA_US / cores)))


FS_ROOT = Path("/sys/fs/cgroup")
_TOP = "sdlab"


class CgroupsUnavailable(RuntimeError):
    """Budgets (CPU or memory) cannot work here; the message says why in one line."""


@dataclass(frozen=True)
class CpuSample:
    """Cumulative counters of one group; two samples give usage and throttling over an interval."""

    usage_s: float
    periods: int
    throttled_periods: int
    throttled_s: float


def home_tag(home: Path) -> str:
    """A short name for one lab home (two homes on one machine keep apart)."""
    return hashlib.sha1(str(Path(home).resolve()).encode()).hexdigest()[:10]


def write(path: Path, text: str) -> None:
    path.write_text(text)


def read_stat(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def join_command(dirs: tuple[Path, ...], argv: list[str], user: str | None = None) -> list[str]:
    """``argv`` wrapped so the process joins the groups in ``dirs`` before it execs: its children, forked
    from the first instruction on, are inside too (adding a pid after spawn races with them).
    With ``user`` the wrapper joins as root and only then drops to that user (with its own
    group only), since a user may not move itself into root's group."""
    joins = " && ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in dict.fromkeys(dirs))
    drop = (f"setpriv --reuid={shlex.quote(user)} --regid={pwd.getpwnam(user).pw_gid} --clear-groups -- "
            if user else "")
    return ["sh", "-c", f'{joins} && exec {drop}"$@"', "sh", *argv]


@dataclass(frozen=True)
class Group:
    """One component's group: the directories a process joins (one in v2, cpu + cpuacct in v1)."""

    version: int
    dirs: tuple[Path, ...]

    def join_command(self, argv: list[str], user: str | None = None) -> list[str]:
        return join_command(self.dirs, argv, user)

    def add(self, pid: int) -> None:
        for d in self.dirs:
            write(d / "cgroup.procs", str(pid))

    def cores(self) -> float | None:
        """The quota in force, in cores (None: unlimited)."""
        if self.version == 2:
            quota, period = (self.dirs[0] / "cpu.max").read_text().split()
            return None if quota == "max" else int(quota) / int(period)
        quota = int((self.dirs[0] / "cpu.cfs_quota_us").read_text())
        return None if quota < 0 else quota / int((self.dirs[0] / "cpu.cfs_period_us").read_text())

    def sample(self) -> CpuSample:
        stat = read_stat(self.dirs[0] / "cpu.stat")
        if self.version == 2:
            return CpuSample(stat.get("usage_usec", 0) / 1e6, stat.get("nr_periods", 0),
                             stat.get("nr_throttled", 0), stat.get("throttled_usec", 0) / 1e6)
        usage_ns = int((self.dirs[-1] / "cpuacct.usage").read_text())
        return CpuSample(usage_ns / 1e9, stat.get("nr_periods", 0), stat.get("nr_throttled", 0),
                         stat.get("throttled_time", 0) / 1e9)


class Groups:
    """The lab's groups in one controller's hierarchies (``roots``): made, found by home tag and removed."""

    what = "budgets"  # said in a refusal: "CPU budgets need ..."

    def __init__(self, version: int, roots: tuple[Path, ...]) -> None:
        self.version = version
        self.roots = roots

    def _checked(self) -> Self:
        for root in self.roots:
            if not os.access(root, os.W_OK):
                raise CgroupsUnavailable(f"{self.what} need cgroups the lab can create, and {root} is not "
                                         "writable by this user (run as root or delegate a cgroup to it)")
        return self

    def _dirs(self, *parts: str) -> tuple[Path, ...]:
        return tuple(root.joinpath(_TOP, *parts) for root in self.roots)

    def _make(self, tag: str, component: str, controller: str) -> tuple[Path, ...]:
        """The component's directories, made anew if a crash left them; in v2 with ``controller``
        enabled on the way down (a v2 group only has the controllers its parent hands on)."""
        if self.version == 2:
            root = self.roots[0]
            _enable(root, controller)
            for level in (root / _TOP, root / _TOP / tag):
                level.mkdir(exist_ok=True)
                _enable(level, controller)
        dirs = self._dirs(tag, component)
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        return dirs

    def components(self, tag: str) -> list[str]:
        base = self.roots[0] / _TOP / tag
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def clean(self, tag: str) -> list[str]:
        """Remove the home's groups; a process still inside (a crash's leftover) goes back to the
        root group first, since a group with members cannot be removed."""
        removed = self.components(tag)
        for base in self._dirs(tag):
            if not base.is_dir():
                continue
            for leaf in [p for p in base.iterdir() if p.is_dir()] + [base]:
                _remove(leaf, base.parent.parent)
        return removed


def _enable(level: Path, controller: str) -> None:
    control = level / "cgroup.subtree_control"
    enabled = control.read_text().split() if control.exists() else []
    if controller not in enabled:
        write(control, f"+{controller}")


def _remove(leaf: Path, root: Path) -> None:
    procs = leaf / "cgroup.procs"
    for pid in (procs.read_text().split() if procs.exists() else []):
        try:
            write(root / "cgroup.procs", pid)
        except OSError as exc:
            if exc.errno != errno.ESRCH:  # gone meanwhile: nothing to move
                raise
    leaf.rmdir()  # in a cgroupfs the control files go with the directory


def unified_with(fs_root: Path, controller: str) -> Path | None:
    """The cgroup v2 hierarchy (mounted at ``fs_root`` or, hybrid, at ``fs_root/unified``) that has ``controller``."""
    for unified in (fs_root, fs_root / "unified"):
        controllers = unified / "cgroup.controllers"
        if controllers.is_file() and controller in controllers.read_text().split():
            return unified
    return None


class CpuGroups(Groups):
    """The CPU quota groups, in whichever hierarchy this machine has."""

    what = "CPU budgets"

    def __init__(self, version: int, cpu_root: Path, acct_root: Path | None = None) -> None:
        self.cpu_root = cpu_root
        self.acct_root = acct_root if acct_root is not None and acct_root.resolve() != cpu_root.resolve() else None
        super().__init__(version, (cpu_root,) + ((self.acct_root,) if self.acct_root else ()))

    @classmethod
    def detect(cls, fs_root: Path = FS_ROOT) -> CpuGroups:
        unified = unified_with(fs_root, "cpu")
        if unified is not None:
            return cls(2, unified)._checked()
        cpu = fs_root / "cpu"
        if (cpu / "cpu.cfs_quota_us").is_file():
            acct = fs_root / "cpuacct"
            return cls(1, cpu, acct if (acct / "cpuacct.usage").is_file() else cpu)._checked()
        raise CgroupsUnavailable("CPU budgets need the cgroup cpu controller, and this machine mounts neither "
                                 f"cgroup v2 cpu.max nor v1 cpu.cfs_quota_us under {fs_root}")

    def create(self, tag: str, component: str, cores: float) -> Group:
        """The component's group with a quota of ``cores`` (made anew if it is left from a crash)."""
        group = Group(self.version, self._make(tag, component, "cpu"))
        period = period_for(cores)
        quota = max(MIN_QUOTA_US, round(cores * period))
        if self.version == 2:
            write(group.dirs[0] / "cpu.max", f"{quota} {period}")
        else:
            write(group.dirs[0] / "cpu.cfs_period_us", str(period))
            write(group.dirs[0] / "cpu.cfs_quota_us", str(quota))
        return group

    def group(self, tag: str, component: str) -> Group:
        return Group(self.version, self._dirs(tag, component))

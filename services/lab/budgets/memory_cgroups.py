"""A hard memory limit per component through Linux cgroups: the small machine's RAM.

cgroup v2 (``memory.max``, and ``memory.swap.max`` 0) where the unified hierarchy has the memory
controller, else cgroup v1 (``memory.limit_in_bytes`` in the ``memory`` hierarchy, and
``memory.memsw.limit_in_bytes`` set equal where the kernel accounts swap, so that a component cannot
swap its way past its limit). Past its limit the kernel reclaims what it can and then kills a
process of the group (an OOM kill), which the group counts: ``memory.events`` ``oom_kill`` (v2),
``memory.oom_control`` ``oom_kill`` (v1). The groups live beside the CPU groups' layout
(``sdlab/<tag>/<component>``) and are made, joined and removed the same way (:class:`Groups`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.lab.budgets.cgroups import (
    FS_ROOT,
    CgroupsUnavailable,
    Groups,
    join_command,
    read_stat,
    unified_with,
    write,
)


@dataclass(frozen=True)
class MemoryGroup:
    """One component's memory group (one directory, in v1 and v2 alike)."""

    version: int
    dirs: tuple[Path, ...]

    def join_command(self, argv: list[str], user: str | None = None) -> list[str]:
        return join_command(self.dirs, argv, user)

    @property
    def _dir(self) -> Path:
        return self.dirs[0]

    def limit_bytes(self) -> int | None:
        """The limit in force (None: unlimited)."""
        text = (self._dir / ("memory.max" if self.version == 2 else "memory.limit_in_bytes")).read_text().strip()
        # v1 says "unlimited" with the largest page-aligned number it can hold.
        return None if text == "max" or int(text) >= 2**62 else int(text)

    def usage_bytes(self) -> int:
        """What the group is charged for now (its processes' memory and their page cache)."""
        return int((self._dir / ("memory.current" if self.version == 2 else "memory.usage_in_bytes")).read_text())

    def oom_kills(self) -> int:
        """Processes of the group the kernel killed at its limit, since the group was made."""
        stat = read_stat(self._dir / ("memory.events" if self.version == 2 else "memory.oom_control"))
        return stat.get("oom_kill", 0)


class MemoryGroups(Groups):
    """The memory limit groups, in whichever hierarchy this machine has."""

    what = "memory budgets"

    @classmethod
    def detect(cls, fs_root: Path = FS_ROOT) -> MemoryGroups:
        unified = unified_with(fs_root, "memory")
        if unified is not None:
            return cls(2, (unified,))._checked()
        memory = fs_root / "memory"
        if (memory / "memory.limit_in_bytes").is_file():
            return cls(1, (memory,))._checked()
        raise CgroupsUnavailable("memory budgets need the cgroup memory controller, and this machine mounts "
                                 f"neither cgroup v2 memory.max nor v1 memory.limit_in_bytes under {fs_root}")

    def create(self, tag: str, component: str, limit: int) -> MemoryGroup:
        """The component's group with a hard limit of ``limit`` bytes (made anew if left from a crash)."""
        group = MemoryGroup(self.version, self._make(tag, component, "memory"))
        d = group.dirs[0]
        if self.version == 2:
            write(d / "memory.max", str(limit))
            if (d / "memory.swap.max").exists():
                write(d / "memory.swap.max", "0")
            return group
        memory, swap = d / "memory.limit_in_bytes", d / "memory.memsw.limit_in_bytes"
        order = [memory]
        if swap.exists():  # the kernel accounts swap (swapaccount): hold memory + swap to the limit too
            # v1 keeps memory <= memory + swap at every write: lowering goes memory first, raising memsw first.
            order = [swap, memory] if limit > int(memory.read_text()) else [memory, swap]
        for path in order:
            write(path, str(limit))
        return group

    def group(self, tag: str, component: str) -> MemoryGroup:
        return MemoryGroup(self.version, self._dirs(tag, component))

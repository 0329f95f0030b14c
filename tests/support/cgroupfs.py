"""Fake cgroup trees in the unit tests behave like cgroupfs where it matters to the lab's clean-up."""

from __future__ import annotations

from pathlib import Path


def rmdir_like_cgroupfs(monkeypatch) -> None:
    """A cgroupfs removes a group's control files with its directory; a plain folder does not."""
    real = Path.rmdir

    def rmdir(self):
        for f in self.iterdir():
            if f.is_file():
                f.unlink()
        real(self)

    monkeypatch.setattr(Path, "rmdir", rmdir)

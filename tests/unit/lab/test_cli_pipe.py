"""A reader that closes our stdout early (`sdlab ... | head`) ends sdlab quietly, with exit code 0."""

from __future__ import annotations

import os
import subprocess
import sys

from services.lab.cli import entry as cli
from services.lab.config import REPO_ROOT


def test_a_closed_pipe_is_a_normal_end():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before sdlab writes a byte
    try:
        result = subprocess.run([sys.executable, "-m", "services.lab.cli", "experiment"], cwd=REPO_ROOT,
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert result.returncode == 0
    assert result.stderr == ""


def test_a_pipe_closed_mid_command_is_not_an_internal_error(monkeypatch, capsys):
    def command(_args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "experiment", command)
    monkeypatch.setattr(cli, "_stdout_closed", lambda: None)  # pytest owns the real stdout
    assert cli.main(["experiment"]) == 0
    assert "internal error" not in capsys.readouterr().err


def test_output_to_a_reader_that_stays_is_whole():
    result = subprocess.run([sys.executable, "-m", "services.lab.cli", "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "sdlab" in result.stdout

"""Where memory budgets come from: `sdlab up --memory` (repeatable) and SDLAB_MEMORY_BUDGETS, the
command line winning name by name; compose mode writes them into its budgets override."""

import pytest
import yaml

from services.lab.backends.compose import project as compose
from services.lab.backends.compose import stack as compose_stack
from services.lab.cli import stack_commands
from services.lab.cli.parser import build_parser
from services.lab.config import LabSettings
from services.lab.errors import LabCommandError

MiB = 2**20


class _Backend:
    running_note = ""

    def __init__(self):
        self.asked = {}

    def up(self, designs, **kw):
        self.asked = kw

    def status(self):
        raise SystemExit  # the command's table is not what is tested here


def test_up_merges_repeated_memory_flags(monkeypatch):
    backend = _Backend()
    monkeypatch.setattr(stack_commands, "backend_for_up", lambda settings, compose: backend)
    args = build_parser().parse_args(["up", "shortener", "--memory", "shortener=256M,redis=64M",
                                      "--memory", "redis=128M", "--budget", "redis=0.5"])
    with pytest.raises(SystemExit):
        stack_commands.cmd_up(args)
    assert backend.asked["memory"] == {"shortener": 256 * MiB, "redis": 128 * MiB}
    assert backend.asked["budget"] == {"redis": 0.5}


def test_a_bad_size_is_refused_before_anything_starts(monkeypatch):
    backend = _Backend()
    monkeypatch.setattr(stack_commands, "backend_for_up", lambda settings, compose: backend)
    with pytest.raises(LabCommandError, match="SIZE must be bytes or a number"):
        stack_commands.cmd_up(build_parser().parse_args(["up", "--memory", "redis=lots"]))
    assert backend.asked == {}


def test_the_setting_is_read_and_compose_writes_it_under_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SDLAB_MEMORY_BUDGETS", "postgres=512M,redis=64M")
    settings = LabSettings(home=tmp_path / "lab")
    assert settings.memory_budgets == "postgres=512M,redis=64M"
    dep = compose.Deployment("lab", ["docker-compose.yml"])
    compose_stack._budgets_for(settings, dep, ["redis", "postgres-0", "caddy"], None, {"redis": 96 * MiB})
    override = yaml.safe_load((tmp_path / "lab" / "compose.budgets.yml").read_text())
    assert override == {"services": {"postgres-0": {"mem_limit": 512 * MiB, "memswap_limit": 512 * MiB},
                                     "redis": {"mem_limit": 96 * MiB, "memswap_limit": 96 * MiB}}}
    assert dep.files[-1] == str(tmp_path / "lab" / "compose.budgets.yml")

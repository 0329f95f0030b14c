"""An experiment variant's memory budgets reach its stack (local mode) or are refused (compose)."""

import pytest

from services.lab.backends.compose import project as compose
from services.lab.backends.compose.backend import ComposeBackend
from services.lab.backends.local import backend as local_backend
from services.lab.backends.local.backend import LocalVariants
from services.lab.budgets import memory
from services.lab.config import LabSettings
from services.lab.errors import LabCommandError
from services.lab.experiments.experiment import Variant

MiB = 2**20


def test_a_local_variant_starts_its_stack_with_its_memory_budgets(tmp_path, monkeypatch):
    started, said = [], []
    monkeypatch.setattr(local_backend.supervisor, "up", lambda settings, designs, **kw: started.append(kw))
    stacks = LocalVariants(LabSettings(home=tmp_path / "lab"), "shortener", said.append, lambda *a: None)
    variant = Variant("small", budgets={"postgres": 0.1}, memory={"postgres": "256M"})
    stacks.enter(variant.name, app_env={}, sizes={}, same_stack=False, budgets=variant.budgets,
                 memory=memory.sizes(variant.memory))
    assert started[0]["memory"] == {"postgres": 256 * MiB} and started[0]["budget"] == {"postgres": 0.1}
    assert "memory postgres=256 MiB" in said[-1] and "budget postgres=0.1" in said[-1]


def test_a_compose_variant_with_memory_budgets_is_refused(tmp_path):
    settings = LabSettings(home=tmp_path / "lab")
    stacks = ComposeBackend(settings, compose.Deployment("lab", ["f.yml"], ["shop"])).variant_stacks("shop", print)
    with pytest.raises(LabCommandError, match="needs local mode .*or memory"):
        stacks.enter("small", app_env={}, sizes={}, same_stack=False, memory={"postgres": 256 * MiB})

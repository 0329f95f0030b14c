"""The engine in services/lab names no design and none of a design's concepts: designs register themselves."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

from services.lab.config import REPO_ROOT
from services.lab.contract import DesignPlugin
from services.lab.designs import names as design_names
from services.lab.designs import plugins

ENGINE = REPO_ROOT / "services" / "lab"
# Concepts of the designs that a design-agnostic engine has no reason to name.
CONCEPTS = {"shortener": ["link", "click", "redirect", "/{code}", "alias"],
            "messaging": ["conversation", "websocket", "presence", "fanout"],
            "shop": ["product", "cart", "checkout", "reshard", "payment", "shard map"]}


def test_no_engine_module_names_a_design_or_its_concepts():
    designs = design_names()
    words = designs + [c for name in designs for c in CONCEPTS.get(name, [])]
    pattern = re.compile("|".join(rf"\b{re.escape(w)}s?\b" if w[0].isalpha() else re.escape(w) for w in words), re.I)
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_every_design_has_a_plugin_with_the_interface():
    for name, plugin in plugins().items():
        assert isinstance(plugin, DesignPlugin) and plugin.design.name == name
        assert plugin.locustfile.exists()
        if plugin.open_loop == "k6":
            assert plugin.k6_script.exists(), name
        else:
            assert plugin.open_loop == "script" and importlib.util.find_spec(plugin.script_module), name
        assert type(plugin).seed is not DesignPlugin.seed, (name, "seed")
        assert callable(plugin.bench), (name, "bench")
        assert plugin.experiments and all(e.name.startswith(f"{name}.") for e in plugin.experiments)
        assert f"{name}.capacity" in {e.name for e in plugin.experiments}


def test_the_three_designs_are_installed_entry_points():
    assert list(plugins()) == ["shortener", "messaging", "shop"]  # by public port
    assert design_names() == ["messaging", "shop", "shortener"]


def test_naming_the_designs_loads_none_of_them():
    """Every command parses its line with the designs' names: that must not import their load tests."""
    probe = "import sys; from services.lab.designs import names; names(); print(sorted(m for m in sys.modules if m.startswith('loadtests')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr

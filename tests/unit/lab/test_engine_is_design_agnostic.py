"""The engine in services/lab names no design and none of a design's concepts; only the registry does."""

from __future__ import annotations

import importlib.util
import re

from services.lab.config import REPO_ROOT
from services.lab.designs import DESIGNS

ENGINE = REPO_ROOT / "services" / "lab"
# Concepts of the designs that a design-agnostic engine has no reason to name.
CONCEPTS = {"shortener": ["link", "click", "redirect", "/{code}", "alias"],
            "messaging": ["conversation", "websocket", "presence", "fanout"],
            "shop": ["product", "cart", "checkout", "reshard", "payment", "shard map"]}
# Designs that run but whose load-test package is not written yet.
WITHOUT_LOAD_TESTS: set[str] = set()


def test_no_engine_module_names_a_design_or_its_concepts():
    words = [name for name in DESIGNS] + [c for name in DESIGNS for c in CONCEPTS.get(name, [])]
    pattern = re.compile("|".join(rf"\b{re.escape(w)}s?\b" if w[0].isalpha() else re.escape(w) for w in words), re.I)
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path.name == "designs.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_every_design_has_a_plugin_with_the_interface():
    from services.lab.designs import plugin_for

    for name, design in DESIGNS.items():
        if name in WITHOUT_LOAD_TESTS:
            assert design.plugin is None, f"{name} has a plugin now: take it off WITHOUT_LOAD_TESTS"
            continue
        assert design.plugin, name
        plugin = plugin_for(name)
        assert plugin.locustfile.exists()
        if plugin.open_loop == "k6":
            assert plugin.k6_script.exists(), name
        else:
            assert plugin.open_loop == "script" and importlib.util.find_spec(plugin.script_module), name
        for method in ("seed", "verify", "gauges", "bench"):
            assert callable(getattr(plugin, method)), (name, method)
        assert plugin.experiments and all(e.name.startswith(f"{name}.") for e in plugin.experiments)
        assert f"{name}.capacity" in {e.name for e in plugin.experiments}

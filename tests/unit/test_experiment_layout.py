"""Every design lays out its experiments alike: one module per experiment beside the design's
``experiments.py``, which only lists them (and declares the engine's capacity curve); the plugin
registers that list."""

from __future__ import annotations

import importlib

import pytest

DESIGNS = ("shortener", "messaging", "shop")


@pytest.mark.parametrize("design", DESIGNS)
def test_each_experiment_lives_in_its_own_module_and_the_plugin_registers_them_all(design):
    registry = importlib.import_module(f"loadtests.{design}.experiments")
    plugin = importlib.import_module(f"loadtests.{design}.plugin").PLUGIN
    assert list(plugin.experiments) == registry.EXPERIMENTS
    names = [e.name for e in registry.EXPERIMENTS]
    assert len(set(names)) == len(names) and all(n.startswith(f"{design}.") for n in names)
    assert f"{design}.capacity" in names
    # An experiment the engine builds (a scaling curve) still has its module here, named after it.
    homes = {e.name: e.evaluate.__module__ if e.evaluate.__module__.startswith("loadtests.")
             else f"loadtests.{design}.{e.name.split('.', 1)[1].replace('-', '_')}"
             for e in registry.EXPERIMENTS if e.name != f"{design}.capacity"}
    assert len(set(homes.values())) == len(homes), homes  # one module each, no two sharing one
    for name, home in homes.items():
        assert home.startswith(f"loadtests.{design}.") and home != registry.__name__, (name, home)
        module = importlib.import_module(home)
        assert module.__doc__ and module.__doc__.startswith(f"``{name}``"), (name, home)

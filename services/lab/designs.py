"""The designs the lab can run: discovered, never listed here.

A design plugs in by naming its plugin (a :class:`~services.lab.contract.DesignPlugin` instance) as an
entry point of the group ``sdlab.designs`` (pyproject.toml), or, when it is not installed (a design
that lives in the tests), by its module in ``SDLAB_DESIGN_MODULES`` (``module`` or ``module:attribute``,
comma-separated; the attribute defaults to ``PLUGIN``). Designs are listed by public port.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import entry_points

from services.lab.config import DesignDiscovery
from services.lab.contract import Design, DesignPlugin
from services.lab.errors import LabCommandError

GROUP = "sdlab.designs"


def plugins() -> dict[str, DesignPlugin]:
    """Every design's plugin by name, in the order of their public ports."""
    return _discover(tuple(DesignDiscovery().design_modules))


def names() -> list[str]:
    """Every design's name, in alphabetical order, without loading an installed plugin (an entry point is
    named after its design): the command line asks this on every command."""
    extra = tuple(DesignDiscovery().design_modules)
    return sorted({entry.name for entry in entry_points(group=GROUP)} | {_load(t).name for t in _unregistered(extra)})


def _unregistered(modules: tuple[str, ...]) -> list[str]:
    """``module:attribute`` of each plugin named in SDLAB_DESIGN_MODULES."""
    return [m if ":" in m else f"{m}:PLUGIN" for m in modules]


def _targets(extra_modules: tuple[str, ...]) -> list[tuple[str | None, str]]:
    """(the name it is registered under, or None; ``module:attribute``) of every plugin."""
    found: list[tuple[str | None, str]] = [(entry.name, entry.value) for entry in entry_points(group=GROUP)]
    return found + [(None, target) for target in _unregistered(extra_modules)]


@cache
def _load(target: str) -> DesignPlugin:
    module, _, attribute = target.partition(":")
    plugin = getattr(import_module(module), attribute)
    if not isinstance(plugin, DesignPlugin):
        raise LabCommandError(f"{target} is not a DesignPlugin (see services/lab/contract.py)")
    return plugin


@cache
def _discover(extra_modules: tuple[str, ...]) -> dict[str, DesignPlugin]:
    found: dict[str, DesignPlugin] = {}
    for registered, target in _targets(extra_modules):
        plugin = _load(target)
        if registered is not None and registered != plugin.name:
            raise LabCommandError(f"the entry point {registered!r} ({target}) is a plugin of {plugin.name!r}")
        if found.get(plugin.name, plugin) is not plugin:
            raise LabCommandError(f"two plugins call themselves {plugin.name!r}: {target} and another")
        found[plugin.name] = plugin
    return dict(sorted(found.items(), key=lambda item: (item[1].design.port, item[0])))


def plugin_for(name: str) -> DesignPlugin:
    """The design's plugin; an unknown name is a one-line error upstream."""
    found = plugins()
    if name not in found:
        raise LabCommandError(f"unknown design {name!r}; choose from: {', '.join(found)}")
    return found[name]


def resolve(names: list[str]) -> list[Design]:
    """The designs named, or all of them; an unknown name is a one-line error upstream."""
    if not names:
        return [plugin.design for plugin in plugins().values()]
    return [plugin_for(name).design for name in dict.fromkeys(names)]

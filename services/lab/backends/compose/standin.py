"""The stand-in base image: Debian from debootstrap, for machines that cannot pull official images.

deploy/compose.standin.yml builds every part from this base (and the project's own Dockerfile with
it as its BASE), so compose mode runs where only package mirrors are reachable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from services.lab.config import DEPLOY_DIR
from services.lab.errors import LabCommandError

BASE_TAG = "sdlab-base:bookworm"
SUITE = "bookworm"
STANDIN_FILE = DEPLOY_DIR / "compose.standin.yml"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# python3-venv: every stand-in installs its wheels into a venv (Debian's python3 has no pip).
PACKAGES = "python3,python3-venv"
IMAGE_CONFIG = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
    'CMD ["/bin/bash"]',
]


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses: the one download source known to be reachable."""
    deb822 = sources_dir / "sources.list.d" / "debian.sources"
    if deb822.is_file():
        found = re.search(r"^URIs:\s*(\S+)", deb822.read_text(), re.M)
        if found:
            return found.group(1)
    one_line = sources_dir / "sources.list"
    if one_line.is_file():
        found = re.search(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", one_line.read_text(), re.M)
        if found:
            return found.group(1)
    return DEFAULT_MIRROR


def _image_exists(tag: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, text=True)
    if result.returncode == 0:
        return True
    if "no such image" in result.stderr.lower():
        return False
    raise LabCommandError(f"the Docker engine did not answer ({result.stderr.strip() or 'no output'}); start dockerd")


def _check_build_tools() -> None:
    if shutil.which("debootstrap") is None:
        raise LabCommandError(f"debootstrap is not installed; `apt-get install debootstrap` to build {BASE_TAG}")
    if os.geteuid() != 0:
        raise LabCommandError(f"building {BASE_TAG} needs root (debootstrap chroots and sets file owners); "
                              "run this once as root")


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:] or ["no output"]
        raise LabCommandError(f"{what} failed: {' | '.join(tail)}")


def _clean(rootfs: Path) -> None:
    """Downloaded packages and apt lists are of no use in an image (a build that needs apt updates)."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*"):
        for path in rootfs.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()


def _import(rootfs: Path, tag: str) -> None:
    config = [arg for line in IMAGE_CONFIG for arg in ("-c", line)]
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        result = subprocess.run(["docker", "import", *config, "-", tag], stdin=tar.stdout,
                                capture_output=True, text=True)
    finally:
        tar.stdout.close()
        tar.wait()
    if tar.returncode != 0 or result.returncode != 0:
        raise LabCommandError(f"docker import of {tag} failed: {result.stderr.strip() or 'tar failed'}")


def ensure_base_image(say: Callable[[str], object] = print, rebuild: bool = False) -> str:
    """The tag of the stand-in base, built (about a minute) only when the engine does not have it."""
    if shutil.which("docker") is None:
        raise LabCommandError("docker is not installed; install docker.io (or Docker Engine) to use compose mode")
    if not rebuild and _image_exists(BASE_TAG):
        say(f"{BASE_TAG}: present")
        return BASE_TAG
    _check_build_tools()
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(prefix="sdlab-rootfs-") as tmp:
        rootfs = Path(tmp) / SUITE
        say(f"{BASE_TAG}: debootstrap {SUITE} (minbase + {PACKAGES}) from {mirror}, this machine's apt source")
        started = time.monotonic()
        _run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(rootfs), mirror],
             "debootstrap")
        say(f"{BASE_TAG}: root file system ready in {time.monotonic() - started:.0f} s")
        _clean(rootfs)
        if HOST_CA_BUNDLE.is_file():
            # This machine's egress may intercept TLS (a proxy with its own CA): the stand-in base
            # trusts what its host trusts, so pip inside a build reaches the package index.
            say(f"{BASE_TAG}: trusting the host's CA bundle ({HOST_CA_BUNDLE})")
            target = rootfs / HOST_CA_BUNDLE.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HOST_CA_BUNDLE, target)
        _import(rootfs, BASE_TAG)
    say(f"{BASE_TAG}: imported in {time.monotonic() - started:.0f} s in all")
    return BASE_TAG


if __name__ == "__main__":
    try:
        ensure_base_image(rebuild="--rebuild" in sys.argv[1:])
    except LabCommandError as exc:
        sys.exit(f"error: {exc}")

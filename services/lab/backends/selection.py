"""Which backend a command talks to, decided once from what this home recorded."""

from __future__ import annotations

from services.lab.backends.base import Backend
from services.lab.backends.compose.backend import ComposeBackend
from services.lab.backends.compose.project import active, default_project, recorded
from services.lab.backends.local.backend import LocalBackend
from services.lab.config import LabSettings
from services.lab.errors import LabCommandError


def select_backend(settings: LabSettings, *, asked: bool = False, implicit: bool = True) -> Backend:
    """The compose deployment this home recorded; else, when ``asked`` (``--compose``) or when ``implicit``
    and no local lab runs from this home, the repo's compose project if one runs; else local processes."""
    deployment = active(settings, asked=asked, implicit=implicit)
    if deployment is not None:
        return ComposeBackend(settings, deployment)
    if asked:
        raise LabCommandError(f"no compose project {default_project()!r} is running; start it with "
                              "`docker compose up -d` or `sdlab up --compose`")
    return LocalBackend(settings)


def backend_for_up(settings: LabSettings, *, compose: bool) -> Backend:
    """The backend ``sdlab up`` starts: compose when asked, else local processes."""
    return ComposeBackend(settings, None) if compose else local_backend(settings)


def local_backend(settings: LabSettings) -> LocalBackend:
    """Local processes, which a recorded compose deployment refuses (it holds the ports)."""
    if recorded(settings) is not None:
        raise LabCommandError(f"a compose deployment is recorded in {settings.state_dir} (it holds the ports); "
                              "take it down with `sdlab down` first")
    return LocalBackend(settings)

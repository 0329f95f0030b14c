"""Process helpers: spawn detached, check liveness safely against pid reuse, stop by process group."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

# Every process the lab starts carries this variable, so that ``down`` can find a process even
# when ``up`` crashed before writing it to the state file.
MARKER_ENV = "SDLAB_STACK"


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    create_time: float

    def process(self) -> psutil.Process | None:
        """The live process, or None when it is gone, a zombie, or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.05:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                _reap(self.pid)
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def alive(self) -> bool:
        return self.process() is not None

    def paused(self) -> bool:
        proc = self.process()
        try:
            return proc is not None and proc.status() == psutil.STATUS_STOPPED
        except psutil.NoSuchProcess:
            return False


def wait_gone(ref: ProcessRef, timeout_s: float = 5.0) -> bool:
    """Wait until the pid is fully gone, zombie included (PostgreSQL's lock file check treats a
    zombie as alive). True when gone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if abs(psutil.Process(ref.pid).create_time() - ref.create_time) > 0.05:
                return True  # the pid now belongs to another process
        except psutil.NoSuchProcess:
            return True
        _reap(ref.pid)
        time.sleep(0.02)
    return False


def _reap(pid: int) -> None:
    """Collect a zombie child of ours (only possible when this process started it)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def as_user(user: str | None) -> dict:
    """Popen arguments to run as ``user`` with its own group only (a kept root gid would make
    root-group permission bits apply to it instead of the "other" bits)."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def spawn(
    cmd: list[str],
    *,
    log_path: Path,
    env: dict[str, str],
    cwd: Path,
    user: str | None = None,
) -> ProcessRef:
    """Start ``cmd`` in its own session (so it outlives the CLI and is stopped as a group)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            **as_user(user),
        )
    return ProcessRef(proc.pid, psutil.Process(proc.pid).create_time())


def process_tree(proc: psutil.Process) -> list[psutil.Process]:
    """The process and all its descendants, collected before any is signalled (once the leader
    dies its children are reparented and can no longer be found through it). Process groups are
    not enough: PostgreSQL's backends call setsid() and leave the postmaster's group."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:  # gone (or a zombie) between the look-up and now
        return []


def tree_usage(root: psutil.Process, known: dict[int, psutil.Process]) -> tuple[float, float]:
    """CPU% (100 = one core, since this tree's last reading) and RSS MiB of ``root``'s whole tree.
    ``known`` keeps each process's psutil handle between readings: its CPU% counts from the last."""
    cpu = rss = 0.0
    for proc in process_tree(root):
        handle = known.setdefault(proc.pid, proc)
        try:
            cpu += handle.cpu_percent(None)
            rss += handle.memory_info().rss
        except psutil.Error:
            continue  # it ended between the listing and the reading
    return round(cpu, 1), round(rss / 2**20, 1)


def signal_tree(ref: ProcessRef, sig: int) -> bool:
    """Send ``sig`` to the component's whole process tree; False if it is already gone."""
    proc = ref.process()
    if proc is None:
        return False
    for member in process_tree(proc):
        try:
            member.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    return True


def stop(ref: ProcessRef, stop_signal: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Graceful stop: ``stop_signal`` to the leader, then SIGKILL to what is left of its tree."""
    proc = ref.process()
    if proc is None:
        return
    tree = process_tree(proc)
    try:
        proc.send_signal(stop_signal)
        for member in tree:  # a paused process keeps the signal pending until it runs again
            member.resume()
    except psutil.NoSuchProcess:
        pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and ref.alive():
        time.sleep(0.05)
    for member in tree:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=2)
    wait_gone(ref)


def _works_in(proc: psutil.Process, home: Path) -> bool:
    """Whether the process runs in one of the lab's data folders of ``home`` (Redis in
    ``<home>/redis``, PostgreSQL in ``<home>/postgres-N/data``), even if the folder was deleted."""
    cwd = Path(proc.cwd().removesuffix(" (deleted)"))
    return home in (cwd.parent, cwd.parent.parent) and cwd.parts[len(home.parts)].startswith(("redis", "postgres-"))


def find_marked(marker: str) -> list[psutil.Process]:
    """Every process whose environment carries ``SDLAB_STACK=marker``, and the servers of that
    home that overwrote their environment with their process title (Redis and PostgreSQL do, so
    the variable is gone from ``/proc``): they are known by the folder they run in."""
    found = []
    me = os.getpid()
    home = Path(marker)
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(MARKER_ENV) == marker or (home.is_absolute() and _works_in(proc, home)):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError, IndexError):
            continue
    return found


def terminate_then_kill(procs: list[psutil.Process], grace_s: float, reap_s: float = 5.0) -> None:
    """SIGTERM each process, SIGKILL those still alive after ``grace_s``, then wait up to ``reap_s`` for them.

    A paused process (``sdlab chaos pause``, SIGSTOP) keeps a SIGTERM it handles pending until it runs
    again, so each is resumed too; for a process that runs, the SIGCONT does nothing.
    """
    for proc in procs:
        try:
            proc.terminate()
            proc.resume()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=reap_s)


def kill_marked(marker: str, timeout_s: float = 5.0) -> int:
    """SIGTERM then SIGKILL every marked process; returns how many there were."""
    procs = find_marked(marker)
    terminate_then_kill(procs, timeout_s, reap_s=timeout_s)
    return len(procs)

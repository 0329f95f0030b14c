"""The local backend's fault verbs, on processes (the compose backend's act on containers,
:mod:`services.lab.backends.compose.stack`, and on the network through :mod:`services.lab.backends.compose.toxiproxy`).

- kill:    SIGKILL to the component's process tree (a crash; PostgreSQL recovers from WAL).
- pause:   SIGSTOP: the process hangs; peers see open connections that never answer,
           which is what a network partition looks like from their side.
- resume:  SIGCONT.
- restart: stop (if still running) and start again on the same address.
- throttle: SIGSTOP/SIGCONT in a duty cycle (PAUSE of every PERIOD ms, default 100/200): a slow
           part, not a dead one (:mod:`services.lab.backends.local.throttle`). Any other action on the component
           ends it first; ``resume`` ends it and leaves the component running.
- switchover: a replicated shard's primary role handed to a healthy replica by Patroni
           (:mod:`services.lab.replication.switchover`); the planned twin of killing the primary.
"""

from __future__ import annotations

import asyncio
import os
import signal

from services.lab import procs
from services.lab.backends.local import throttle
from services.lab.backends.local.supervisor import (
    require_state,
    start_component,
    wait_ready,
)
from services.lab.config import REPO_ROOT, LabSettings
from services.lab.errors import LabCommandError
from services.lab.progress import EventSink, quiet
from services.lab.replication.switchover import switchover
from services.lab.stack import Component
from services.lab.state import LabState, exclusive

ACTIONS = ("kill", "stop", "pause", "resume", "restart", "throttle", "switchover")


def _component(state: LabState, name: str):
    if name not in state.components:
        known = ", ".join(state.components) or "none"
        raise LabCommandError(f"unknown component {name!r}; running components: {known}")
    return state.components[name]


def local_chaos(settings: LabSettings, action: str, name: str, on_event: EventSink = quiet,
                argument: str | None = None) -> str:
    """``argument``: the action's own, e.g. throttle's ``PAUSE_MS/PERIOD_MS``."""
    if action not in ACTIONS:
        raise LabCommandError(f"unknown chaos action {action!r}; choose from: {', '.join(ACTIONS)}")
    if argument and action != "throttle":
        raise LabCommandError(f"{action} takes no argument (got {argument!r})")
    duty = throttle.parse_duty(argument) if action == "throttle" else None
    with exclusive(settings.state_dir):
        state = require_state(settings)
        c = _component(state, name)
        if action == "switchover":
            return switchover(state, name)
        ref = c.ref
        if action == "throttle":
            if not ref.alive():
                raise LabCommandError(f"{name} is not running; start it with `sdlab chaos restart {name}`")
            procs.signal_tree(ref, signal.SIGCONT)  # a paused component is throttled from running
            tr = throttle.start(state.home, name, ref, duty, {**os.environ, procs.MARKER_ENV: state.marker}, REPO_ROOT)
            return (f"throttling {name} (pid {c.pid}): stopped {duty[0]} ms of every {duty[1]} ms "
                    f"(throttler pid {tr.pid}); end it with `sdlab chaos resume {name}`")
        ended = throttle.end(state.home, name)  # every other action ends a throttle first
        if action == "kill":
            if not procs.signal_tree(ref, signal.SIGKILL):
                return f"{name} was not running"
            procs.wait_gone(ref)
            return f"killed {name} (pid {c.pid})"
        if action == "stop":  # a graceful leave: it drains as on a deploy (a consumer leaves its group)
            if not ref.alive():
                return f"{name} was not running"
            procs.stop(ref, c.stop_signal)
            return f"stopped {name} (pid {c.pid}); start it again with `sdlab chaos restart {name}`"
        if action == "pause":
            if not procs.signal_tree(ref, signal.SIGSTOP):
                raise LabCommandError(f"{name} is not running; start it with `sdlab chaos restart {name}`")
            return f"paused {name} (pid {c.pid}); resume with `sdlab chaos resume {name}`"
        if action == "resume":
            if not procs.signal_tree(ref, signal.SIGCONT):
                raise LabCommandError(f"{name} is not running; start it with `sdlab chaos restart {name}`")
            return f"resumed {name} (pid {c.pid})" + (" and ended its throttle" if ended else "")
        procs.stop(ref, c.stop_signal)
        spec_fields = {k: v for k, v in vars(c).items() if k not in ("pid", "create_time", "log")}
        running = start_component(state, Component(**spec_fields), on_event)
        asyncio.run(wait_ready([running], settings.ready_timeout_s, on_event))
        return f"restarted {name} (pid {running.pid}) on {running.address}"

"""A slow component, for real: SIGSTOP its process tree for PAUSE ms of every PERIOD ms, then SIGCONT.

``sdlab chaos throttle COMPONENT [PAUSE/PERIOD]`` (or ``at 10% throttle postgres-1 400/500`` in a
fault schedule) starts this loop as a process of its own, so that it outlives the command that
started it; any other chaos action on the component (``resume`` first of all) and ``sdlab down``
end it. Nothing is injected into the component: it simply gets the CPU for a fraction of the time,
as a server starved by a noisy neighbour or stalled by pauses does, and every request it serves
waits for its next running slice. The tree is listed again every cycle, so processes it forks
meanwhile (a database's new backends) are throttled too.

    python -m services.lab.backends.local.throttle --pid PID --create-time T --pause-ms 100 --period-ms 200
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from services.lab import procs
from services.lab.errors import LabCommandError

DEFAULT_DUTY = (100, 200)  # paused 100 ms of every 200 ms


def parse_duty(text: str | None) -> tuple[int, int]:
    """``"PAUSE/PERIOD"`` in milliseconds (``"100/200"``); None or empty: the default."""
    if not text:
        return DEFAULT_DUTY
    pause, sep, period = text.partition("/")
    if not sep or not pause.isdigit() or not period.isdigit():
        raise LabCommandError(f"throttle takes PAUSE_MS/PERIOD_MS, e.g. 100/200, not {text!r}")
    pause_ms, period_ms = int(pause), int(period)
    if not 0 < pause_ms < period_ms or period_ms > 60_000:
        raise LabCommandError(f"throttle {text!r}: the pause must be above 0 and below the period (at most 60000 ms)")
    return pause_ms, period_ms


def marker_path(home: Path, component: str) -> Path:
    """Where the throttler of ``component`` is recorded (its pid and start time)."""
    return home / f"throttle-{component}.json"


def _record(home: Path, component: str) -> dict | None:
    try:
        return json.loads(marker_path(home, component).read_text())
    except (OSError, ValueError):
        return None


def running(home: Path, component: str) -> procs.ProcessRef | None:
    data = _record(home, component)
    if data is None:
        return None
    ref = procs.ProcessRef(data["pid"], data["create_time"])
    if ref.alive():
        return ref
    marker_path(home, component).unlink(missing_ok=True)
    return None


def start(home: Path, component: str, target: procs.ProcessRef, duty: tuple[int, int], env: dict[str, str],
          cwd: Path) -> procs.ProcessRef:
    """Start the throttler of ``component`` (ending one already running); returns its process."""
    end(home, component)
    pause_ms, period_ms = duty
    ref = procs.spawn([sys.executable, "-m", "services.lab.backends.local.throttle", "--pid", str(target.pid),
                       "--create-time", repr(target.create_time), "--pause-ms", str(pause_ms),
                       "--period-ms", str(period_ms)],
                      log_path=home / "logs" / f"throttle-{component}.log", env=env, cwd=cwd)
    marker_path(home, component).write_text(json.dumps({
        "pid": ref.pid, "create_time": ref.create_time, "pause_ms": pause_ms, "period_ms": period_ms,
        "target": {"pid": target.pid, "create_time": target.create_time}}))
    return ref


def end(home: Path, component: str) -> bool:
    """Stop the throttler of ``component`` (it leaves the component running); True if one ran."""
    data = _record(home, component)
    ref = running(home, component)
    marker_path(home, component).unlink(missing_ok=True)
    if ref is None:
        return False
    procs.stop(ref, signal.SIGTERM, timeout_s=5.0)
    # It continues its target on the way out; if it had to be killed mid-pause, do it here.
    target = (data or {}).get("target")
    if target:
        procs.signal_tree(procs.ProcessRef(target["pid"], target["create_time"]), signal.SIGCONT)
    return True


def end_all(home: Path) -> list[str]:
    """Stop every throttler of this lab home; the components they throttled, by name."""
    ended = []
    for path in sorted(home.glob("throttle-*.json")):
        component = path.stem[len("throttle-"):]
        if end(home, component):
            ended.append(component)
    return ended


def cycle_plan(pause_ms: int, period_ms: int) -> tuple[float, float]:
    """Seconds stopped and seconds running in each cycle."""
    return pause_ms / 1000, (period_ms - pause_ms) / 1000


def run(target: procs.ProcessRef, pause_ms: int, period_ms: int, should_stop=lambda: False) -> str:
    """The duty cycle, until the target is gone or ``should_stop()``; the target is left running."""
    stopped_s, running_s = cycle_plan(pause_ms, period_ms)

    def nap(seconds: float) -> None:  # in short steps, so that an end request is seen within 50 ms
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0 and not should_stop():
            time.sleep(min(left, 0.05))

    try:
        while not should_stop():
            if not procs.signal_tree(target, signal.SIGSTOP):
                return "target gone"
            nap(stopped_s)
            if not procs.signal_tree(target, signal.SIGCONT):
                return "target gone"
            nap(running_s)
        return "ended"
    finally:
        procs.signal_tree(target, signal.SIGCONT)  # never leave it stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--create-time", type=float, required=True)
    parser.add_argument("--pause-ms", type=int, default=DEFAULT_DUTY[0])
    parser.add_argument("--period-ms", type=int, default=DEFAULT_DUTY[1])
    args = parser.parse_args(argv)
    parse_duty(f"{args.pause_ms}/{args.period_ms}")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    why = run(procs.ProcessRef(args.pid, args.create_time), args.pause_ms, args.period_ms, lambda: bool(stop))
    print(f"throttle of pid {args.pid} ({args.pause_ms}/{args.period_ms} ms): {why}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a command as a child subreaper: ``python subreaper.py CMD [ARG...]`` (standard library only,
run by path so any interpreter of the same version can start it).

Patroni starts PostgreSQL the way pg_ctl does, daemonized: the server leaves Patroni's process
tree. Under this wrapper it is re-parented here instead of to init, so the member stays one tree:
a chaos kill takes Patroni and its server together (a crashed machine), a pause stops both, and
the CPU sampler counts both. Termination signals go to the command, which stops its server; the
wrapper exits once no child is left, with the command's exit code.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    child = subprocess.Popen(argv)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    code = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:  # none left: the command and every server it daemonized are gone
            return code
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
            child.returncode = code  # reaped here: Popen must not wait for it again


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

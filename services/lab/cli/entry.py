"""``sdlab``'s entry: parse, run the command, and turn every expected problem into one line."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path

from pydantic import ValidationError

from services.lab import retry, ui
from services.lab.cli.estimate_command import cmd_estimate
from services.lab.cli.parser import build_parser
from services.lab.cli.run_commands import (
    cmd_bench,
    cmd_demo,
    cmd_design,
    cmd_evidence,
    cmd_experiment,
    cmd_load,
    run_design_command,
)
from services.lab.cli.stack_commands import (
    cmd_chaos,
    cmd_down,
    cmd_logs,
    cmd_status,
    cmd_top,
    cmd_up,
)
from services.lab.designs import names as design_names
from services.lab.errors import LabCommandError

COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "logs": cmd_logs, "chaos": cmd_chaos, "load": cmd_load, "experiment": cmd_experiment, "bench": cmd_bench, "evidence": cmd_evidence, "top": cmd_top,
            "demo": cmd_demo, "estimate": cmd_estimate}


def _stdout_closed() -> None:
    """The reader of our output left (``sdlab status --json | head``): a normal end for a CLI.
    Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else argv
        if argv and argv[0] in design_names():  # `sdlab <design> <command> ...`: the design parses its own options
            run_design_command(argv[0], argv[1:])
            return 0
        args = build_parser().parse_args(argv)
        COMMANDS.get(args.command, cmd_design)(args)
        return 0
    except LabCommandError as exc:
        ui.error(str(exc))
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        ui.error(f"bad setting {where}: {first['msg']} (check your SDLAB_* environment variables)")
        return 2
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130
    except BrokenPipeError:
        _stdout_closed()
        return 0
    except retry.STACK_ERRORS as exc:  # the stack's answer, not a bug of sdlab: which call got what
        ui.error(retry.describe(exc))
        return 1
    except Exception:  # a bug, not a user error: one line here, the traceback in a file
        path = Path(tempfile.gettempdir()) / "sdlab-crash.log"
        path.write_text(traceback.format_exc())
        ui.error(f"internal error (a bug in sdlab): {sys.exc_info()[1]!r}; traceback in {path}")
        return 70

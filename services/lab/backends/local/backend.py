"""The local backend: every part a process of this machine, started and watched by the supervisor."""

from __future__ import annotations

import shutil
import subprocess

import psutil

from services.lab import procs
from services.lab.backends.base import Backend, VariantStacks
from services.lab.backends.local import status as local_status
from services.lab.backends.local import supervisor
from services.lab.backends.local.chaos import local_chaos
from services.lab.budgets import memory as memory_rules
from services.lab.budgets.local import BudgetSampler
from services.lab.config import LabSettings
from services.lab.errors import LabCommandError
from services.lab.progress import EventSink, Say, quiet
from services.lab.state import ComponentStatus, LabState, load_state


class LocalBackend(Backend):
    name = "local"
    refusals = {"toxics": "toxics need compose mode with the official images (`docker compose up` or "
                          "`sdlab up --compose`): local processes talk to each other directly, without Toxiproxy"}
    running_note = "The lab keeps running in the background; stop it with `sdlab down`."

    def up(self, designs: list[str], *, on_event: EventSink = quiet, say: Say = print, standin: bool = False,
           budget: dict[str, float] | None = None, memory: dict[str, int] | None = None) -> None:
        supervisor.up(self.settings, designs, on_event=on_event, budget=budget, memory=memory)

    def down(self, *, volumes: bool = False, on_event: EventSink = quiet) -> str:
        stopped = supervisor.down(self.settings, on_event=on_event)
        return "nothing was running" if not stopped else f"stopped {len(stopped)} component(s)"

    def find_state(self) -> LabState | None:
        return load_state(self.settings.state_dir)

    def state(self) -> LabState:
        return supervisor.require_state(self.settings)

    def watched_state(self) -> LabState:
        return supervisor.watched_state(self.settings)

    def status(self) -> tuple[LabState, list[ComponentStatus]]:
        return local_status.status(self.settings)

    def logs(self, component: str, lines: int, follow: bool) -> None:
        folder = self.settings.state_dir / "logs"
        log = folder / f"{component}.log"
        if not log.exists():
            known = sorted(p.stem for p in folder.glob("*.log"))
            raise LabCommandError(f"no log for {component!r}; components with logs: {', '.join(known) or 'none'}")
        tail = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(log)]
        try:
            subprocess.run(tail, check=False)
        except KeyboardInterrupt:
            pass

    def chaos(self, action: str, component: str, *, argument: str | None = None, on_event: EventSink = quiet) -> str:
        return local_chaos(self.settings, action, component, on_event=on_event, argument=argument)

    def usage(self) -> ProcessUsage:
        return ProcessUsage()

    def budget_sampler(self, state: LabState) -> BudgetSampler:
        return BudgetSampler(state)

    def variant_stacks(self, design: str, say: Say, on_event: EventSink | None = None) -> LocalVariants:
        return LocalVariants(self.settings, design, say, on_event or quiet)

    def add_postgres(self, total: int, on_event: EventSink = quiet) -> list[str]:
        return supervisor.add_postgres(self.settings, total, on_event)


class ProcessUsage:
    """CPU% (since the previous call) and RSS of each component's process tree."""

    def __init__(self) -> None:
        self._known: dict[int, psutil.Process] = {}

    def sample(self, state: LabState) -> dict[str, tuple[float, float]]:
        out = {}
        for name, c in state.components.items():
            root = c.ref.process()
            if root is None:
                continue
            out[name] = procs.tree_usage(root, self._known)
        return out


class LocalVariants(VariantStacks):
    """Each variant on a stack of its own, on fresh data in ``<home>/experiment``, sized as it says."""

    def __init__(self, settings: LabSettings, design: str, say: Say, on_event: EventSink) -> None:
        self.settings, self.design, self.say, self.on_event = settings, design, say, on_event
        self.running: LocalBackend | None = None

    def begin(self) -> None:
        supervisor.down_if_running(self.settings, self.say, "each variant starts a stack of its own")

    def enter(self, variant: str, *, app_env: dict[str, str], sizes: dict[str, int | str], same_stack: bool,
              budgets: dict[str, float] | None = None, memory: dict[str, int] | None = None) -> LocalBackend:
        if self.running is not None and same_stack:
            self.say(f"== {variant}: on the same stack")
            return self.running
        overrides: dict = {f"{self.design}_{what}": sizes[what] for what in ("instances", "workers") if what in sizes}
        if "shards" in sizes:
            overrides["postgres_shards"] = sizes["shards"]
        for what in ("replicas", "replication"):
            if what in sizes:
                overrides[f"postgres_{what}"] = sizes[what]
        # A home of its own: a variant measures its own setting, not what an earlier run (or the
        # user's own lab) left in the databases.
        vsettings = self.settings.model_copy(update={**overrides, "home": supervisor.experiment_home(self.settings)})
        self.close()
        shutil.rmtree(vsettings.state_dir, ignore_errors=True)
        said = [f"{k}={v}" for k, v in app_env.items()] + [f"budget {k}={v:g}" for k, v in (budgets or {}).items()]
        said += [f"memory {k}={memory_rules.show(v)}" for k, v in (memory or {}).items()]
        if sizes.get("replicas"):
            said.append(f"{sizes['replicas']} replica(s) per server, {sizes.get('replication', 'async')}")
        self.say(f"== {variant}: starting the stack" + (f" ({', '.join(said)})" if said else ""))
        supervisor.up(vsettings, [self.design], on_event=self.on_event, app_env=app_env, budget=budgets,
                      memory=memory)
        self.running = LocalBackend(vsettings)
        return self.running

    def close(self) -> None:
        if self.running is not None:
            supervisor.down(self.running.settings)
            self.running = None

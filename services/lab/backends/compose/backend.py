"""The compose backend: the stack as a ``docker compose`` project (:mod:`.compose_project`,
:mod:`.compose_stack`), its topology the file's."""

from __future__ import annotations

from services.lab.backends.base import Backend, VariantStacks
from services.lab.backends.compose import stack as compose_stack
from services.lab.backends.compose.project import Deployment, lab_state
from services.lab.backends.compose.toxiproxy import ToxiproxyCall, apply_toxic
from services.lab.config import LabSettings
from services.lab.errors import LabCommandError
from services.lab.progress import EventSink, Say, quiet
from services.lab.state import ComponentStatus, LabState


class ComposeBackend(Backend):
    name = "compose"
    refusals = {
        "sizing": "compose mode runs the file's topology: --instances and --shards are local mode only",
        "add_postgres": "adding PostgreSQL servers needs local mode: a compose deployment runs the servers its file lists",
        "local_stacks": "the benchmark starts local stacks of its own, on the same ports: "
                        "take the compose deployment down first (`sdlab down`)",
    }
    refresh_every_s = 5  # asking the engine for the containers costs ~0.1 s
    running_note = ("Running under docker compose; `sdlab load`, `top`, `chaos` and `experiment` find it. "
                    "Stop it with `sdlab down`.")

    def __init__(self, settings: LabSettings, deployment: Deployment | None) -> None:
        """``deployment``: the project to act on; None before ``up`` records one."""
        super().__init__(settings)
        self.deployment = deployment

    @property
    def _dep(self) -> Deployment:
        assert self.deployment is not None, "up() records the deployment first"
        return self.deployment

    def up(self, designs: list[str], *, on_event: EventSink = quiet, say: Say = print, standin: bool = False,
           budget: dict[str, float] | None = None, memory: dict[str, int] | None = None) -> None:
        self.deployment = compose_stack.up(self.settings, designs, standin=standin, say=say, budget=budget,
                                           memory=memory)

    def down(self, *, volumes: bool = False, on_event: EventSink = quiet) -> str:
        return compose_stack.down(self.settings, self._dep, volumes=volumes)

    def find_state(self) -> LabState | None:
        return self.state()

    def state(self) -> LabState:
        return lab_state(self.settings, self._dep)[0]

    def status(self) -> tuple[LabState, list[ComponentStatus]]:
        return compose_stack.status(self.settings, self._dep)

    def logs(self, component: str, lines: int, follow: bool) -> None:
        compose_stack.logs(self._dep, component, lines, follow)

    def chaos(self, action: str, component: str, *, argument: str | None = None, on_event: EventSink = quiet) -> str:
        return compose_stack.chaos(self._dep, action, component)

    def network_fault(self, calls: list[ToxiproxyCall]) -> str:
        return apply_toxic(self.settings.toxiproxy_url, calls)

    def usage(self) -> ContainerUsage:
        return ContainerUsage(self._dep)

    def variant_stacks(self, design: str, say: Say, on_event: EventSink | None = None) -> ComposeVariants:
        return ComposeVariants(self, design, say)


class ContainerUsage:
    """CPU% and memory of each service's container, as the engine reports them."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment

    def sample(self, state: LabState) -> dict[str, tuple[float, float]]:
        return compose_stack.container_usage(self._deployment)


class ComposeVariants(VariantStacks):
    """A variant is an environment override and a recreate of the design's services. Unlike local mode
    the databases are not fresh for each variant (the deployment's parts stay up), and a variant that
    needs another count of instances, workers or servers needs local mode."""

    def __init__(self, backend: ComposeBackend, design: str, say: Say) -> None:
        self.backend, self.design, self.say = backend, design, say
        self.settings, self.deployment = backend.settings, backend._dep
        self.label = f" (compose project {self.deployment.project})"
        self.changed = False

    def check(self, experiment: str, sized: list[str]) -> None:
        if self.design not in self.deployment.designs:
            raise LabCommandError(f"{self.design} is not in the compose deployment; `sdlab up --compose {self.design}`")
        if sized:
            raise LabCommandError(f"{experiment} changes how many instances or servers run, or their budgets "
                                  f"({', '.join(sized)}); "
                                  "compose mode runs the file's topology, so run it in local mode")

    def enter(self, variant: str, *, app_env: dict[str, str], sizes: dict[str, int | str], same_stack: bool,
              budgets: dict[str, float] | None = None, memory: dict[str, int] | None = None) -> ComposeBackend:
        if sizes or budgets or memory:
            raise LabCommandError(f"variant {variant} needs local mode (it sizes the stack or budgets its CPU "
                                  "or memory)")
        if same_stack:
            self.say(f"== {variant}: on the same services")
            return self.backend
        self.say(f"== {variant}")
        if app_env or self.changed:
            compose_stack.apply_variant(self.settings, self.deployment, self.design, app_env, self.say)
            self.changed = bool(app_env)
        return self.backend

    def close(self) -> None:
        if self.changed:  # back to the file's settings
            compose_stack.apply_variant(self.settings, self.deployment, self.design, {}, self.say)
            self.changed = False

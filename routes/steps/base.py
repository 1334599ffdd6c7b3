"""What a step kind is, and the compiled pieces the engine runs.

A step kind is one class (``StepKind``) that owns everything about one kind of
step in the route language: its JSON Schema, how a step of it is compiled
(expressions parsed once, connector calls and other references checked), what
nested step lists it has, and what it does to a run. The compiler and the
engine know no kind by name; they ask the kind::

    class Filter(StepKind):
        name = "filter"
        schema = EXPR

        def compile(self, spec, ctx):
            return {"expr": ctx.expr(spec)}

        def run(self, engine, step, run):
            if not truthy(step.compiled["expr"].search(run.data())):
                raise Stop("filtered", "filtered out")
            return ""

    KIND = Filter()

and the package registers it by name (``routes.steps.STEP_KINDS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jmespath
from jmespath.exceptions import JMESPathError

from bdchub.core.i18n import _

if TYPE_CHECKING:
    from bdchub.core.config import Checker

    from ..engine import Engine
    from ..run import Run

PathT = tuple[str | int, ...]


@dataclass
class Call:
    """One compiled connector call of a step."""

    connector: str
    operation: str
    payload: Any = None  # None: the body; a compiled expression; or {target: compiled}
    into: str | None = None
    timeout: float | None = None


@dataclass
class Step:
    """One compiled step of a route."""

    kind: str
    spec: Any
    id: str  # "3", "2.when.0.1", "4.on_timeout.0"
    impl: StepKind
    branches: dict[str, list[Step]] = field(default_factory=dict)
    compiled: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.id}:{self.kind}"


class Stop(Exception):  # noqa: N818 - control flow, not an error
    """Ends the run here with ``outcome`` (filtered, awaiting, correction_requested …)."""

    def __init__(self, outcome: str, detail: str = ""):
        self.outcome = outcome
        self.detail = detail


@dataclass
class Branch:
    """What a step returns to continue in one of its nested step lists."""

    steps: list[Step]
    detail: str = ""


class Compiling:
    """What a step kind's ``compile`` may use: the problems collector, the path of
    the step in the config, the whole config, and the connectors it may call.

    Every problem is recorded at its key path (``problem``), so ``hub check``
    points at file:line; compilation goes on after a problem, and a value that
    could not be compiled comes back as None.
    """

    def __init__(self, checker: Checker, path: PathT, config: Mapping[str, Any],
                 connectors: Mapping[str, Any] | None, sleep: Callable[[float], None]):
        self.checker = checker
        self.path = path
        self.config = config
        self.connectors = connectors
        self.sleep = sleep

    def problem(self, message: str, *sub: str | int, key: bool = False) -> None:
        self.checker.add((*self.path, *sub), message, key=key)

    def expr(self, text: str, *sub: str | int) -> Any:
        """``text`` compiled as JMESPath, or None after recording why it is not."""
        try:
            return jmespath.compile(text)
        except JMESPathError as exc:
            # JMESPath's message goes on with the expression and a caret on
            # lines of their own; one line reads better in a list of problems.
            self.problem(_("'{expr}' is not a valid JMESPath expression: {error}",
                           expr=text, error=str(exc).splitlines()[0]), *sub)
            return None

    def mapping(self, fields: Mapping[str, str], *sub: str | int) -> dict[str, Any]:
        """``target: expression`` pairs, each compiled."""
        return {target: self.expr(text, *sub, target) for target, text in fields.items()}

    def call(self, spec: Mapping[str, Any], *sub: str | int) -> Call:
        """A connector call, checked against the connectors it names (the one place
        where steps are checked against connectors)."""
        from bdchub.connectors.registry import call_problems, config_folder

        payload = spec.get("payload")
        if self.connectors is not None:
            # Only a field mapping names the parameters; the body or one expression
            # is known at run time only.
            keys = list(payload) if isinstance(payload, Mapping) else []
            for found in call_problems(self.connectors, spec["connector"],
                                       str(spec["operation"]), keys,
                                       base_dir=config_folder(self.checker)):
                self.problem(found.message, *sub, *found.path, key=found.key)
        if isinstance(payload, str):
            payload = self.expr(payload, *sub, "payload")
        elif isinstance(payload, Mapping):
            payload = self.mapping(payload, *sub, "payload")
        return Call(connector=spec["connector"], operation=spec["operation"], payload=payload,
                    into=spec.get("into"), timeout=spec.get("timeout"))


class StepKind:
    """One kind of step: schema, compilation, nested steps and what it does.

    Every hook has a default that does nothing, so a kind implements only what
    it has.
    """

    #: the key of the step in YAML (``- enrich: …``)
    name: str = ""
    #: JSON Schema of the step's value
    schema: Mapping[str, Any] = {}
    #: whether a request/reply endpoint route may use it
    sync_ok: bool = True
    #: whether a run resumed inside its nested steps starts again at the step itself
    #: (a loop: the nested step's position does not say which iteration it was at)
    reruns_whole: bool = False
    #: whether a run of it stays in this process (no connector call, no store
    #: access, no waiting): a route of such steps alone is run in batches
    #: (``routes.batch``)
    in_process: bool = False

    def branches(self, spec: Any) -> Iterator[tuple[str, PathT, list[Any]]]:
        """Nested step lists: (branch key, path below the step, the steps)."""
        return iter(())

    def awaited_types(self, spec: Any) -> tuple[str, ...]:
        """Message types a run of this step waits for (declares the await queue)."""
        return ()

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        """What ``run`` needs, prepared once (expressions, calls, buckets)."""
        return {}

    def run(self, engine: Engine, step: Step, run: Run) -> str | Branch:
        """Do the step to ``run``; return a detail for the trace, or a ``Branch``.
        Raise ``Stop`` to end the run, any error to fail the step."""
        raise NotImplementedError

"""From the ``routes:`` section of config.yaml to compiled routes.

One compiler serves ``hub check`` and ``hub run`` alike, so a route that passes
the check is the route that runs: the route's own shape (``ROUTE_SCHEMA``),
each step against its kind's schema, each kind's compilation (JMESPath parsed
once; connectors, operations, checklists and schema names looked up), the
fallback route, and that a request/reply route does not await. Every problem
is reported at its key path, so ``hub check`` says file:line, and every
problem of the file is reported at once.

This is the only place where steps are checked against connectors (through
``routes.steps.base.Compiling.call``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bdchub.core import greenloop
from bdchub.core.config import Checker
from bdchub.core.i18n import _
from bdchub.core.suggest import did_you_mean

from .language import ROUTE_SCHEMA
from .steps import STEP_KINDS
from .steps.base import Compiling, PathT, Step
from .tenants import blocks as tenant_blocks
from .tenants import connector_view, runtime_name

#: The ``routes:`` section of config.yaml (registered by ``routes.parts``).
SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "object"},
                          "description": "what happens to each kind of message, by route name"}

DEFAULT_ON_ERROR = {"attempts": 2, "backoff": 1.0, "max_backoff": 30.0, "then": "park",
                    "park_for": 60.0, "park_max": 10}

Sleep = Callable[[float], None]


@dataclass
class ErrorPolicy:
    attempts: int = 2
    backoff: float = 1.0
    max_backoff: float = 30.0
    then: str = "park"
    park_for: float = 60.0
    park_max: int = 10
    fallback: str | None = None

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> ErrorPolicy:
        block = block or {}
        retry = block.get("retry") or {}
        then = block.get("then") or ("fallback" if block.get("fallback") else "park")
        return cls(attempts=int(retry.get("attempts", DEFAULT_ON_ERROR["attempts"])),
                   backoff=float(retry.get("backoff", DEFAULT_ON_ERROR["backoff"])),
                   max_backoff=float(retry.get("max_backoff", DEFAULT_ON_ERROR["max_backoff"])),
                   then=then,
                   park_for=float(block.get("park_for", DEFAULT_ON_ERROR["park_for"])),
                   park_max=int(block.get("park_max", DEFAULT_ON_ERROR["park_max"])),
                   fallback=block.get("fallback"))


@dataclass
class Route:
    name: str
    patterns: tuple[str, ...]
    steps: list[Step]
    on_error: ErrorPolicy
    concurrency: int = 4
    enabled: bool = True
    endpoint: dict[str, Any] | None = None
    queue: str = ""
    #: a tenant's own route (``tenants:``) serves only that tenant
    tenant: str = ""
    #: tenants whose own route of this name replaces this shared one
    replaced_for: frozenset[str] = frozenset()

    def serves(self, tenant: str) -> bool:
        """Whether this route runs messages of ``tenant`` (docs/tenants.md)."""
        if self.tenant:
            return tenant == self.tenant
        return tenant not in self.replaced_for

    @property
    def sync(self) -> bool:
        return bool(self.endpoint and self.endpoint.get("reply"))

    def walk(self, steps: list[Step] | None = None) -> list[Step]:
        """Every step of the route, nested ones included."""
        out: list[Step] = []
        for step in self.steps if steps is None else steps:
            out.append(step)
            for branch in step.branches.values():
                out.extend(self.walk(branch))
        return out

    def awaited_types(self) -> set[str]:
        return {t for step in self.walk() for t in step.impl.awaited_types(step.spec)}


def endpoint_type(route_name: str) -> str:
    """The message type of an endpoint route's requests unless it names one."""
    return "inbound." + "".join(c if c.isalnum() else "_" for c in route_name.lower())


class _RouteCompiler:
    def __init__(self, checker: Checker, config: Mapping[str, Any],
                 connectors: Mapping[str, Any] | None, sleep: Sleep, prefix: str):
        self.checker = checker
        self.config = config
        self.connectors = connectors
        self.sleep = sleep
        self.prefix = prefix

    def route(self, name: str, spec: Any, names: Mapping[str, Any], *,
              path: PathT | None = None, tenant: str = "") -> Route | None:
        """Route ``name`` (a tenant's own: ``name@tenant``, written at ``path``)."""
        path = path or ("routes", name)
        if tenant:
            name = runtime_name(name, tenant)
        if not isinstance(spec, Mapping):
            self.checker.add(path, _("a route is a mapping with from and steps"))
            return None
        if not self.checker.schema(spec, ROUTE_SCHEMA, path):
            steps = spec.get("steps")
            if isinstance(steps, list):  # report the steps' problems too
                self.steps(steps, (), (*path, "steps"))
            return None
        source = spec["from"]
        endpoint = None
        if isinstance(source, str):
            patterns: tuple[str, ...] = (source,)
        elif "types" in source:
            patterns = tuple(source["types"])
        else:
            endpoint = dict(source["endpoint"])
            endpoint.setdefault("method", "POST")
            endpoint.setdefault("reply", True)  # as web.config_schema's inbound endpoints
            endpoint.setdefault("type", endpoint_type(name))
            patterns = ()
        steps = self.steps(spec["steps"], (), (*path, "steps"))
        on_error = spec.get("on_error") or {}
        fallback = on_error.get("fallback")
        if fallback is not None and fallback not in names:
            self.checker.add((*path, "on_error", "fallback"),
                             _("no route named '{name}'{hint}", name=fallback,
                               hint=did_you_mean(fallback, names)))
        route = Route(name=name, patterns=patterns, steps=steps,
                      on_error=ErrorPolicy.from_config(on_error),
                      concurrency=int(spec.get("concurrency", 4)),
                      enabled=bool(spec.get("enabled", True)), endpoint=endpoint,
                      queue=f"{self.prefix}.route.{name}", tenant=tenant)
        if route.sync:
            for step in route.walk():
                if not step.impl.sync_ok:
                    self.checker.add(path, _("route '{route}' answers its endpoint synchronously "
                                             "and cannot await other messages", route=name))
                    break
        return route

    def steps(self, items: list[Any], ids: tuple[str | int, ...], path: PathT) -> list[Step]:
        steps = []
        for i, item in enumerate(items):
            here, sid = (*path, i), ".".join(map(str, (*ids, i)))
            if not isinstance(item, Mapping) or len(item) != 1:
                self.checker.add(here, _("each step is one mapping with a single key, the step "
                                         "kind (one of: {kinds})",
                                         kinds=", ".join(STEP_KINDS.names())))
                continue
            (kind, spec), = item.items()
            if kind not in STEP_KINDS:
                self.checker.add((*here, kind), str(STEP_KINDS.unknown(str(kind))), key=True)
                continue
            impl = STEP_KINDS.get(kind)
            at = (*here, kind)
            if not self.checker.schema(spec, impl.schema, at):
                continue
            ctx = Compiling(self.checker, at, self.config, self.connectors, self.sleep)
            step = Step(kind=kind, spec=spec, id=sid, impl=impl, compiled=impl.compile(spec, ctx))
            for key, sub, nested in impl.branches(spec):
                tokens = tuple(int(t) if t.isdigit() else t for t in key.split("."))
                step.branches[key] = self.steps(nested, (*ids, i, *tokens), (*at, *sub))
            steps.append(step)
        return steps


def compile_routes(config: Mapping[str, Any], *, checker: Checker | None = None,
                   connectors: Mapping[str, Any] | None = None, prefix: str = "bdchub",
                   sleep: Sleep = greenloop.sleep) -> dict[str, Route]:
    """Every route of ``config``. ``connectors`` (blocks by name) are what steps
    may call; None skips that check. Without a ``checker`` the problems are
    raised as one ``ConfigError``; with one they are added to it."""
    own = checker is None
    checker = checker or Checker(config)
    routes = config.get("routes")
    compiler = _RouteCompiler(checker, config, connectors, sleep, prefix)
    compiled = {}
    for name, spec in (routes.items() if isinstance(routes, Mapping) else ()):
        route = compiler.route(name, spec, routes)
        if route is not None:
            compiled[name] = route
    compiled.update(_tenant_routes(config, checker, connectors, sleep, prefix, compiled))
    if own:
        checker.raise_if_any()
    return compiled


def _tenant_routes(config: Mapping[str, Any], checker: Checker,
                   connectors: Mapping[str, Any] | None, sleep: Sleep, prefix: str,
                   shared: dict[str, Route]) -> dict[str, Route]:
    """The routes of the ``tenants:`` blocks, as ``name@code`` (docs/tenants.md):
    each checked against the connectors as its tenant sees them; a shared route a
    tenant replaces no longer serves that tenant."""
    found: dict[str, Route] = {}
    routes = config.get("routes")
    routes = routes if isinstance(routes, Mapping) else {}
    for code, block in tenant_blocks(config).items():
        specs = block.get("routes")
        if not isinstance(specs, Mapping):
            continue
        view = None if connectors is None else connector_view(connectors, block)
        compiler = _RouteCompiler(checker, config, view, sleep, prefix)
        for name, spec in specs.items():
            path: PathT = ("tenants", code, "routes", name)
            route = compiler.route(name, spec, {**routes, **specs}, path=path, tenant=code)
            if route is None:
                continue
            replaced = shared.get(name)
            if route.endpoint is not None and (replaced is None
                                               or replaced.endpoint != route.endpoint):
                checker.add((*path, "from"), _(
                    "a tenant's route answers an endpoint only in place of the shared route "
                    "of the same name and endpoint: the API is the whole hub's"))
            if replaced is not None:
                replaced.replaced_for |= {code}
            found[route.name] = route
    return found


def compile_route(name: str, spec: Mapping[str, Any], *, prefix: str = "bdchub",
                  connectors: Mapping[str, Any] | None = None,
                  checklists: Mapping[str, Any] | None = None,
                  sleep: Sleep = greenloop.sleep) -> Route:
    """One route on its own (``ConfigError`` listing its problems)."""
    config = {"routes": {name: spec}, "checklists": checklists or {}}
    return compile_routes(config, connectors=connectors, prefix=prefix, sleep=sleep)[name]


def check_section(checker: Checker, routes: Any) -> None:
    """The ``routes:`` section's check (``core.config.Section.check``): compile
    every route against the file's connectors; count steps for ``hub check``."""
    config = checker.config
    connectors = config.get("connectors")
    compiled = compile_routes(config, checker=checker,
                              connectors=connectors if isinstance(connectors, Mapping) else {})
    for name in (routes if isinstance(routes, Mapping) else {}):
        route = compiled.get(name)
        checker.report.routes.append((name, len(route.walk()) if route else 0))
    for name, route in compiled.items():
        if route.tenant:
            checker.report.routes.append((name, len(route.walk())))

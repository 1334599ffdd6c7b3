"""Execution of routes: compiled steps, delivery handling, await, park and dead letters.

How one delivery is handled (``Engine.handle``)::

    parse envelope ── malformed ──────────────> dead letter (reason malformed), ack
    (message id, route) already processed? ───> ack (duplicate absorbed)
    run the steps
    publish what the run emitted (confirmed)
    store.finish: processed record + hops + parked / dead letter / correlation
                  + verifications + progress, in one transaction
    ack

A crash anywhere before the ack redelivers the message: the run is repeated,
outbound calls carry the same idempotency key (``{origin id}:{route}:{step}``)
and the emitted messages the same ids (derived from the origin id, route and
step), so their consumers absorb them. A crash after ``finish`` but before the
ack is absorbed by the processed record.

Step semantics (expressions are JMESPath over the body, which also holds
``_type``, ``_tenant``, ``_business_no``, ``_id``, ``_source`` and ``_headers``):

- ``validate``: the body (or ``path`` of it) against a canonical schema;
  violations dead-letter the message with reason ``schema``.
- ``map``: build a new body from ``target: expression`` pairs (dotted targets
  nest); ``merge: true`` merges them into the body instead. ``null`` results
  are left out.
- ``filter``: a false, null or empty result ends the route (outcome
  ``filtered``; the message is done, not failed).
- ``choice``: the first ``when`` whose condition holds runs its steps, else
  ``otherwise``; then the route goes on after the choice.
- ``enrich``: call a connector (payload: the body, an expression or a field
  mapping) and merge the reply into the body (at ``into``, or at the top when
  the reply is an object). ``record: KIND`` also stores the reply as a
  verification record of the application.
- ``to``: the same call, reply kept only with ``into``; ``recipients`` calls
  several, one after the other or, with ``parallel: true``, at once (the step
  fails if any fails; the ones that succeeded are safe to repeat thanks to
  their idempotency keys ``…:{step}#{i}``).
- ``split``: publish one message of type ``publish`` per item of ``items``
  (an object item is the body, anything else becomes ``{"value": item}``);
  the route goes on with the original body. Each message carries the business
  number ``business_no`` (an expression over the item) gives, else the parent's.
- ``await``: wait for messages of ``types`` with the same tenant and business
  number (all of them, or with ``mode: any`` the first), for at most
  ``timeout`` seconds. The message is acknowledged and its state stored; when
  they arrive (even if they arrived before the await started) the route goes
  on after the await with what arrived at ``into`` (default ``awaited``: the
  body of the one type, or ``{type: body}`` for several); at the deadline the
  ``on_timeout`` steps run instead and the route ends there.
- ``publish``: emit a message of another type (body: the current body, an
  expression or a mapping), same tenant and business number.
- ``wire_tap``: a call whose failure is logged and ignored, or a copy
  published under another type.
- ``throttle``: at most ``rate`` messages a second through this step, per
  worker process (token bucket, ``burst`` default ``max(1, rate)``).
- ``set``: headers (values are expressions), tenant, business number. A new
  tenant or business number re-keys the message: the whole run's hops, its
  verification records and the progress it reports are stored under the number
  the run ends with (the hops also stay under the former number, as the
  hand-over), and what it emits afterwards carries the new one.

Progress: a run with a business number updates the application's progress from
the message it received and then from the body it ends with (unless the run
failed), so a route that maps ``stage`` / ``status`` moves the progress itself.
- ``require_materials``: compare the application's ``materials`` with the
  checklist for its registration type (``checklists: {name: {"200": [...],
  "default": [...]}}``; an item is matched by name, else by type, counting
  repeated types). Missing ones publish a correction request
  (``correction.requested``, shaped like the ``correction_request`` schema:
  business number, items, deadline) and end the route with outcome
  ``correction_requested``; the stage is recorded as ``correction``. A
  missing checklist is a business outcome, not an error, so nothing is
  dead-lettered: the applicant supplies the materials and submits again.

Errors (``on_error``): a ``RecoverableError`` is retried in place
(``retry: {attempts, backoff, max_backoff}``, default 2 attempts); then by
``then`` (default ``park``): ``park`` stores the message as it was at the
failing step and republishes it ``park_for`` seconds later (default 60) to
resume at that step, up to ``park_max`` times (default 10) before it is
dead-lettered with reason ``park_max``; ``dead_letter`` dead-letters at once;
``fallback`` hands the message (with ``x-hub-error``) to the ``fallback``
route. A ``PermanentError`` (reason ``permanent``), a schema violation
(``schema``) or any other failure (``error``) is dead-lettered, or handed to
the fallback route when ``then: fallback``.

Routes ``from: {endpoint: {…, reply: true}}`` run synchronously inside the
web request (``Engine.run_sync``): they may not ``await``, and errors are
raised to the caller instead of parking.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from bdchub.connectors.base import CallContext
from bdchub.core import greenloop
from bdchub.core.broker import Broker, Delivery, topic_matches
from bdchub.core.envelope import Envelope, Hop
from bdchub.core.errors import (
    ConfigError,
    ConnectorError,
    HubError,
    MessageError,
    PermanentError,
    RecoverableError,
    RouteError,
    StoreError,
)
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id
from bdchub.core.masking import Masker
from bdchub.core.store import Finish, Store, dumps

from .middleware import Middleware, Middlewares
from .progress import extract

log = logging.getLogger("bdchub.routes")

H_ORIGIN = "x-hub-origin"
H_ROUTE = "x-hub-route"
H_PARENT = "x-hub-parent"
H_RESUME = "x-hub-resume"
H_RESUME_MODE = "x-hub-resume-mode"
H_PARK_COUNT = "x-hub-park-count"
H_REPLAY = "x-hub-replay"
H_CORRELATION = "x-hub-correlation"
H_ERROR = "x-hub-error"
H_FAILED_ROUTE = "x-hub-failed-route"
H_FAILED_STEP = "x-hub-failed-step"
H_OUTCOME = "x-hub-outcome"
#: Threads of each route's pool for `parallel: true` recipient lists (off the event loop).
FANOUT_THREADS = 8

DEFAULT_ON_ERROR = {"attempts": 2, "backoff": 1.0, "max_backoff": 30.0, "then": "park",
                    "park_for": 60.0, "park_max": 10}

Validator = Callable[[str, Any], list]


def _default_validator(name: str, instance: Any) -> list:
    try:
        from bdchub.schemas import catalog
    except ImportError as exc:  # pragma: no cover - schemas ship with the hub
        raise RouteError(_("canonical schemas are not available: {error}", error=exc)) from exc
    return catalog.validate(name, instance)


# -- compiled routes --------------------------------------------------------

@dataclass
class Call:
    connector: str
    operation: str
    payload: Any = None  # None: the body; a compiled expression; or {target: compiled}
    into: str | None = None
    timeout: float | None = None


@dataclass
class Step:
    kind: str
    spec: Any
    id: str  # "3", "2.when.0.1", "4.on_timeout.0"
    branches: dict[str, list[Step]] = field(default_factory=dict)
    compiled: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.id}:{self.kind}"


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

    @property
    def sync(self) -> bool:
        return bool(self.endpoint and self.endpoint.get("reply"))

    def awaited_types(self) -> set[str]:
        found: set[str] = set()

        def walk(steps: list[Step]) -> None:
            for s in steps:
                if s.kind == "await":
                    found.update(s.spec["types"])
                for branch in s.branches.values():
                    walk(branch)
        walk(self.steps)
        return found


def _expr(text: str, where: str) -> Any:
    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        raise ConfigError(_("{where}: '{expr}' is not a valid JMESPath expression: {error}",
                            where=where, expr=text, error=exc)) from exc


def _mapping(fields: Mapping[str, str], where: str) -> dict[str, Any]:
    return {target: _expr(expr, f"{where}.{target}") for target, expr in fields.items()}


class _Bucket:
    """Token bucket shared by the threads of one process."""

    def __init__(self, rate: float, burst: int, sleep: Callable[[float], None]):
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = time.monotonic()
        self.lock = threading.Lock()
        self.sleep = sleep

    def take(self) -> float:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            self.tokens -= 1.0
            wait = 0.0 if self.tokens >= 0 else -self.tokens / self.rate
        if wait:
            self.sleep(wait)
        return wait


def compile_route(name: str, spec: Mapping[str, Any], *, prefix: str = "bdchub",
                  connectors: Mapping[str, Any] | None = None,
                  checklists: Mapping[str, Any] | None = None,
                  sleep: Callable[[float], None] = greenloop.sleep) -> Route:
    """Compile one route of the config (already checked by ``core.config``)."""
    source = spec.get("from")
    endpoint = None
    if isinstance(source, str):
        patterns: tuple[str, ...] = (source,)
    elif isinstance(source, Mapping) and "types" in source:
        patterns = tuple(source["types"])
    elif isinstance(source, Mapping) and "endpoint" in source:
        endpoint = dict(source["endpoint"])
        endpoint.setdefault("method", "POST")
        endpoint.setdefault("reply", True)  # as web.config_schema's inbound endpoints
        endpoint.setdefault("type", "inbound." + "".join(
            c if c.isalnum() else "_" for c in name.lower()))
        patterns = ()
    else:
        raise ConfigError(_("route '{route}': 'from' must be a message type, a list of types "
                            "or an endpoint", route=name))
    where = f"routes.{name}"
    steps = _compile_steps(spec.get("steps") or [], (), where, connectors, checklists or {}, sleep)
    route = Route(name=name, patterns=patterns, steps=steps,
                  on_error=ErrorPolicy.from_config(spec.get("on_error")),
                  concurrency=int(spec.get("concurrency", 4)),
                  enabled=bool(spec.get("enabled", True)), endpoint=endpoint,
                  queue=f"{prefix}.route.{name}")
    if route.sync and route.awaited_types():
        raise ConfigError(_("route '{route}' answers its endpoint synchronously and cannot "
                            "await other messages", route=name))
    return route


def _compile_steps(items: list[Any], path: tuple[Any, ...], where: str,
                   connectors: Mapping[str, Any] | None, checklists: Mapping[str, Any],
                   sleep: Callable[[float], None]) -> list[Step]:
    from .language import STEP_SCHEMAS

    steps = []
    for i, item in enumerate(items):
        here = (*path, i)
        sid = ".".join(map(str, here))
        loc = f"{where}.steps.{sid}"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ConfigError(_("{where}: each step is one mapping with a single key", where=loc))
        (kind, spec), = item.items()
        if kind not in STEP_SCHEMAS:
            raise ConfigError(_("{where}: unknown step '{kind}'", where=loc, kind=kind))
        step = Step(kind=kind, spec=spec, id=sid)
        _compile_step(step, loc, connectors, checklists, sleep)
        if kind == "choice":
            for b, branch in enumerate(spec.get("when") or []):
                step.branches[f"when.{b}"] = _compile_steps(
                    branch.get("steps") or [], (*here, "when", b), where, connectors, checklists, sleep)
            if spec.get("otherwise") is not None:
                step.branches["otherwise"] = _compile_steps(
                    spec["otherwise"], (*here, "otherwise"), where, connectors, checklists, sleep)
        if kind == "await" and spec.get("on_timeout") is not None:
            step.branches["on_timeout"] = _compile_steps(
                spec["on_timeout"], (*here, "on_timeout"), where, connectors, checklists, sleep)
        steps.append(step)
    return steps


def _call(spec: Mapping[str, Any], loc: str, connectors: Mapping[str, Any] | None) -> Call:
    name = spec["connector"]
    if connectors is not None and name not in connectors:
        raise ConfigError(_("{where}: no connector named '{name}'", where=loc, name=name))
    payload = spec.get("payload")
    if isinstance(payload, str):
        payload = _expr(payload, f"{loc}.payload")
    elif isinstance(payload, Mapping):
        payload = _mapping(payload, f"{loc}.payload")
    return Call(connector=name, operation=spec["operation"], payload=payload,
                into=spec.get("into"), timeout=spec.get("timeout"))


def _compile_step(step: Step, loc: str, connectors: Mapping[str, Any] | None,
                  checklists: Mapping[str, Any], sleep: Callable[[float], None]) -> None:
    kind, spec, c = step.kind, step.spec, step.compiled
    if kind == "validate":
        c["schema"] = spec if isinstance(spec, str) else spec["schema"]
        c["path"] = _expr(spec["path"], loc) if isinstance(spec, Mapping) and spec.get("path") else None
    elif kind == "map":
        fields = spec["fields"] if "fields" in spec and isinstance(spec["fields"], Mapping) else spec
        c["fields"] = _mapping(fields, loc)
        c["merge"] = bool(spec.get("merge")) if "fields" in spec else False
    elif kind == "filter":
        c["expr"] = _expr(spec, loc)
    elif kind == "choice":
        c["when"] = [_expr(b["condition"], f"{loc}.when.{i}.condition")
                     for i, b in enumerate(spec["when"])]
    elif kind in ("enrich", "to", "wire_tap"):
        if "recipients" in spec:
            c["calls"] = [_call(r, f"{loc}.recipients.{i}", connectors)
                          for i, r in enumerate(spec["recipients"])]
            c["parallel"] = bool(spec.get("parallel"))
        elif "connector" in spec:
            c["calls"] = [_call(spec, loc, connectors)]
            c["parallel"] = False
        else:
            c["calls"] = []
            c["publish"] = spec["publish"]
        if kind == "enrich":
            c["record"] = spec.get("record")
    elif kind == "split":
        c["items"] = _expr(spec["items"], f"{loc}.items")
        c["business_no"] = (_expr(spec["business_no"], f"{loc}.business_no")
                            if spec.get("business_no") else None)
    elif kind == "publish":
        c["type"] = spec if isinstance(spec, str) else spec["type"]
        body = None if isinstance(spec, str) else spec.get("body")
        c["body"] = (_expr(body, f"{loc}.body") if isinstance(body, str)
                     else _mapping(body, f"{loc}.body") if isinstance(body, Mapping) else None)
    elif kind == "throttle":
        rate = float(spec["rate"])
        c["bucket"] = _Bucket(rate, int(spec.get("burst") or max(1, int(rate))), sleep)
    elif kind == "set":
        c["headers"] = _mapping(spec.get("headers") or {}, f"{loc}.headers")
        c["tenant"] = _expr(spec["tenant"], f"{loc}.tenant") if spec.get("tenant") else None
        c["business_no"] = (_expr(spec["business_no"], f"{loc}.business_no")
                            if spec.get("business_no") else None)
    elif kind == "await":
        c["into"] = spec.get("into") or "awaited"
        c["mode"] = spec.get("mode") or "all"
    elif kind == "require_materials":
        name = spec["checklist"]
        if name not in checklists:
            raise ConfigError(_("{where}: no checklist named '{name}' under checklists:",
                                where=loc, name=name))
        c["checklist"] = checklists[name]
        c["registration_type"] = _expr(spec.get("registration_type") or "registration_type", loc)
        c["materials"] = _expr(spec.get("materials") or "materials", loc)
        c["publish"] = spec.get("publish") or "correction.requested"
        c["deadline_days"] = int(spec.get("deadline_days") or 5)


# -- body helpers -----------------------------------------------------------

def envelope_json(env: Envelope) -> bytes:
    """``Envelope.to_json`` without ``dataclasses.asdict``'s deep copies (same output)."""
    body = env.body if isinstance(env.body, dict) else dict(env.body)
    return json.dumps({
        "type": env.type, "tenant": env.tenant, "body": body, "business_no": env.business_no,
        "source": env.source, "headers": dict(env.headers), "id": env.id,
        "created_at": env.created_at, "attempt": env.attempt,
        "trace": [{"route": h.route, "step": h.step, "started_at": h.started_at,
                   "duration_ms": h.duration_ms, "outcome": h.outcome, "detail": h.detail}
                  for h in env.trace]},
        ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def with_path(body: Mapping[str, Any], path: str | None, value: Any) -> dict[str, Any]:
    """A new body with ``value`` at dotted ``path`` (copies only along the path;
    bodies are never changed in place, so emitted messages can share them)."""
    if not path or path == ".":
        if isinstance(value, Mapping):
            return {**body, **value}
        return {**body, "result": value}
    head, _sep, rest = path.partition(".")
    out = dict(body)
    if rest:
        inner = out.get(head)
        out[head] = with_path(inner if isinstance(inner, Mapping) else {}, rest, value)
    else:
        out[head] = value
    return out


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", [], {})


# -- a run ------------------------------------------------------------------

class _Stop(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, outcome: str, detail: str = ""):
        self.outcome = outcome
        self.detail = detail


class _StepFailed(Exception):  # noqa: N818
    def __init__(self, step: Step, error: BaseException):
        self.step = step
        self.error = error


@dataclass
class Outgoing:
    envelope: Envelope
    queue: str | None = None  # None: by type on the topic exchange


# Outcomes of a run that did not get through its steps: the body it stopped
# with says nothing about the application.
FAILED = frozenset(("parked", "dead_letter", "fallback", "error"))


class Run:
    """The state of one route run over one message."""

    def __init__(self, route: Route, received: Envelope, clock: Callable[[], float]):
        self.route = route
        self.received = received
        headers = dict(received.headers)
        self.origin = headers.get(H_ORIGIN) or received.id
        self.type = received.type
        self.tenant = received.tenant
        self.business_no = received.business_no
        self.source = received.source
        self.headers = headers
        self.body: dict[str, Any] = dict(received.body)
        self.hops: list[Hop] = []
        self.out: list[Outgoing] = []
        self.records: list[dict[str, Any]] = []
        self.correlation: dict[str, Any] | None = None
        self.parked: dict[str, Any] | None = None
        self.dead_letter: dict[str, Any] | None = None
        self.progress_extra: dict[str, Any] | None = None
        # (tenant, business number) keys the message had before a ``set`` re-keyed it.
        self.former: list[tuple[str, str]] = []
        self.outcome = "completed"
        self.error: BaseException | None = None
        self.failed_step: Step | None = None
        self.clock = clock

    def rekey(self, tenant: str, business_no: str) -> None:
        key = (self.tenant, self.business_no)
        if (tenant, business_no) != key and key not in self.former:
            self.former.append(key)
        self.tenant, self.business_no = tenant, business_no

    def progress(self, masking: Masker) -> dict[str, Any] | None:
        """What this run says about the application's progress: the message it
        received, then the body it ends with (a route may set stage / status)."""
        if not self.business_no:
            return None
        progress = extract(self.type, self.tenant, self.received.body, masking)
        if self.outcome not in FAILED and self.body != self.received.body:
            ended = extract(self.type, self.tenant, self.body, masking)
            if ended:
                progress = {**(progress or {}), **ended}
        if self.progress_extra:
            progress = {**(progress or {}), **self.progress_extra}
        return progress

    def data(self) -> dict[str, Any]:
        return {**self.body, "_type": self.type, "_tenant": self.tenant,
                "_business_no": self.business_no, "_id": self.received.id,
                "_source": self.source, "_headers": self.headers}

    def key(self, step: Step, suffix: str = "") -> str:
        return f"{self.origin}:{self.route.name}:{step.id}{suffix}"

    def business_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if not k.startswith("x-hub-")}

    def emit(self, type_: str, body: Mapping[str, Any], step: Step, n: int = 0,
             queue: str | None = None, headers: Mapping[str, str] | None = None,
             business_no: str | None = None) -> Envelope:
        env = Envelope(type=type_, tenant=self.tenant, body=body,
                       business_no=self.business_no if business_no is None else business_no,
                       source=f"route:{self.route.name}",
                       headers={**self.business_headers(), H_PARENT: self.received.id,
                                H_ROUTE: self.route.name, **(headers or {})},
                       id=derive_id(self.origin, self.route.name, step.id, n),
                       trace=(*self.received.trace, *self.hops))
        self.out.append(Outgoing(env, queue))
        return env

    def state(self, *, id: str, headers: Mapping[str, str]) -> Envelope:  # noqa: A002
        """The message as it is now (for parking, continuations and fallbacks)."""
        keep = {k: v for k, v in self.headers.items()
                if k not in (H_RESUME, H_RESUME_MODE, H_CORRELATION)}
        return Envelope(type=self.type, tenant=self.tenant, body=self.body,
                        business_no=self.business_no, source=self.source,
                        headers={**keep, H_ORIGIN: self.origin, **headers}, id=id,
                        created_at=self.received.created_at, attempt=self.received.attempt,
                        trace=(*self.received.trace, *self.hops))

    def result(self) -> Envelope:
        return Envelope(type=self.type, tenant=self.tenant, body=self.body,
                        business_no=self.business_no, source=self.source,
                        headers={**self.headers, H_OUTCOME: self.outcome}, id=self.received.id,
                        created_at=self.received.created_at, attempt=self.received.attempt,
                        trace=(*self.received.trace, *self.hops))


# -- the engine -------------------------------------------------------------

class Engine:
    """Runs compiled routes over messages; knows the store, broker and connectors."""

    def __init__(self, routes: Mapping[str, Route], *, connectors: Mapping[str, Any],
                 store: Store, broker: Broker, middleware: Middleware | None = None,
                 validator: Validator | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = greenloop.sleep, masking: Masker | None = None,
                 tenant: str = "", organisation: str = "", prefix: str = "bdchub",
                 await_queue: str | None = None, redeliver_after: float = 30.0,
                 inbox_ttl: float = 7 * 86400.0, processed_ttl: float = 30 * 86400.0):
        self.routes = dict(routes)
        self.connectors = connectors
        self.store = store
        self.broker = broker
        self.mw = middleware if middleware is not None else Middlewares()
        self.validator = validator or _default_validator
        self.clock = clock
        self.sleep = sleep
        self.masking = masking or Masker()
        self.tenant = tenant
        self.organisation = organisation or tenant
        self.prefix = prefix
        self.await_queue = await_queue or f"{prefix}.await"
        self.redeliver_after = redeliver_after
        self.inbox_ttl = inbox_ttl
        self.processed_ttl = processed_ttl
        # One pool per route: recipients that hang fill their own route's pool only.
        self._fanout: dict[str, ThreadPoolExecutor] = {}
        self._fanout_lock = threading.Lock()

    # -- running steps
    def execute(self, route: Route, received: Envelope) -> Run:
        """Run ``route`` over ``received``; the run says what came out (nothing is
        published or stored yet)."""
        run = Run(route, received, self.clock)
        self.mw.before_message(route.name, received)
        resume = received.headers.get(H_RESUME)
        mode = received.headers.get(H_RESUME_MODE, "after")
        try:
            if resume:
                tokens = [int(t) if t.isdigit() else t for t in resume.split(".")]
                self._run_list(route.steps, run, tokens, mode)
            else:
                self._run_list(route.steps, run, None, mode)
        except _Stop as stop:
            run.outcome = stop.outcome
        except _StepFailed as failed:
            self._failed(run, failed.step, failed.error)
        if run.outcome in ("parked", "dead_letter", "fallback") and run.hops:
            # The failing step's hop says what became of the message.
            run.hops[-1] = replace(run.hops[-1], outcome=run.outcome)
        self.mw.after_message(route.name, received, run.outcome)
        return run

    def _run_list(self, steps: list[Step], run: Run, resume: list[Any] | None, mode: str) -> None:
        start = 0
        if resume:
            idx = resume[0]
            if not isinstance(idx, int) or idx >= len(steps):
                raise _StepFailed(steps[0] if steps else Step("resume", None, "?"), RouteError(
                    _("the resume point {path} no longer exists in route '{route}'",
                      path=".".join(map(str, resume)), route=run.route.name),
                    route=run.route.name))
            step, rest = steps[idx], resume[1:]
            if not rest:
                if mode == "at":
                    start = idx
                elif mode == "timeout":
                    self._hop(run, step, run.clock(), 0.0, "timeout", "await timed out")
                    self._run_list(step.branches.get("on_timeout") or [], run, None, "after")
                    raise _Stop("timed_out")
                else:
                    self._hop(run, step, run.clock(), 0.0, "ok", "resumed")
                    start = idx + 1
            else:
                if rest[0] == "when" and len(rest) >= 2:
                    key, sub = f"when.{rest[1]}", rest[2:]
                else:
                    key, sub = str(rest[0]), rest[1:]
                branch = step.branches.get(key)
                if branch is None:
                    raise _StepFailed(step, RouteError(
                        _("the resume point {path} no longer exists in route '{route}'",
                          path=".".join(map(str, resume)), route=run.route.name),
                        route=run.route.name))
                self._run_list(branch, run, sub, mode)
                if key == "on_timeout":
                    raise _Stop("timed_out")
                start = idx + 1
        for step in steps[start:]:
            self._step(step, run)

    def _hop(self, run: Run, step: Step, started: float, ms: float, outcome: str,
             detail: str = "") -> Hop:
        hop = Hop(route=run.route.name, step=step.label, started_at=started,
                  duration_ms=round(ms, 3), outcome=outcome, detail=detail[:500])
        run.hops.append(hop)
        self.mw.after_step(run.route.name, step, run, hop)
        return hop

    def _step(self, step: Step, run: Run) -> None:
        policy = run.route.on_error
        self.mw.before_step(run.route.name, step, run)
        started = run.clock()
        t0 = time.perf_counter()
        if step.kind == "choice":
            try:
                branch, detail = _choose(step, run)
            except Exception as exc:  # noqa: BLE001 - a bad condition fails the step
                return self._step_failed(step, run, started, t0, exc)
            # The choice's own hop comes before its branch's hops.
            self._hop(run, step, started, (time.perf_counter() - t0) * 1000, "ok", detail)
            for nested in branch:
                self._step(nested, run)
            return None
        attempt = 0
        while True:
            attempt += 1
            try:
                detail = STEP_RUNNERS[step.kind](self, step, run) or ""
                break
            except _Stop as stop:
                self._hop(run, step, started, (time.perf_counter() - t0) * 1000,
                          "awaiting" if stop.outcome == "awaiting" else "skipped",
                          stop.detail or stop.outcome)
                raise
            except RecoverableError as exc:
                if attempt >= max(1, policy.attempts):
                    return self._step_failed(step, run, started, t0, exc)
                delay = min(policy.max_backoff, policy.backoff * (2 ** (attempt - 1)))
                if exc.retry_after:
                    delay = min(max(delay, exc.retry_after), max(policy.max_backoff, delay))
                self.sleep(delay)
            except _StepFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a step is handled by policy
                return self._step_failed(step, run, started, t0, exc)
        self._hop(run, step, started, (time.perf_counter() - t0) * 1000, "ok", detail)
        return None

    def _step_failed(self, step: Step, run: Run, started: float, t0: float,
                     exc: BaseException) -> None:
        self._hop(run, step, started, (time.perf_counter() - t0) * 1000, "error",
                  f"{type(exc).__name__}: {exc}")
        self.mw.on_error(run.route.name, step, run, exc)
        raise _StepFailed(step, exc)

    def _failed(self, run: Run, step: Step, exc: BaseException) -> None:
        """Decide what a failed step means for the message: park, dead letter or fallback."""
        policy = run.route.on_error
        run.error = exc
        run.failed_step = step
        error_text = f"{type(exc).__name__}: {exc}"[:4000]
        now = run.clock()
        if run.route.sync:
            run.outcome = "error"
            return
        if policy.then == "fallback" and policy.fallback and policy.fallback in self.routes:
            target = self.routes[policy.fallback]
            env = run.state(id=derive_id(run.received.id, run.route.name, "fallback"),
                            headers={H_ERROR: error_text[:500], H_FAILED_ROUTE: run.route.name,
                                     H_FAILED_STEP: step.label})
            env = env.evolve(headers={k: v for k, v in env.headers.items() if k != H_PARK_COUNT})
            run.out.append(Outgoing(env, target.queue))
            run.outcome = "fallback"
            return
        if isinstance(exc, RecoverableError) and policy.then == "park":
            count = int(run.headers.get(H_PARK_COUNT) or 0)
            if count < policy.park_max:
                park_id = derive_id(run.received.id, run.route.name, "park")
                env = run.state(id=park_id, headers={H_RESUME: step.id, H_RESUME_MODE: "at",
                                                     H_PARK_COUNT: str(count + 1)})
                run.parked = {"id": park_id, "message_id": run.received.id,
                              "origin_id": run.origin, "route": run.route.name,
                              "step": step.label, "tenant": run.tenant,
                              "business_no": run.business_no, "reason": "recoverable",
                              "last_error": error_text, "envelope": env.to_json().decode(),
                              "park_count": count + 1, "due_at": now + policy.park_for}
                run.outcome = "parked"
                return
            reason = "park_max"
        elif isinstance(exc, RecoverableError):
            reason = "retries_exhausted"
        elif isinstance(exc, MessageError):
            reason = "schema" if exc.violations else "invalid"
        elif isinstance(exc, PermanentError):
            reason = "permanent"
        else:
            reason = "error"
        run.dead_letter = self._dead_letter_row(run.received, run.route.name, step.label,
                                                reason, error_text, origin=run.origin)
        run.outcome = "dead_letter"

    @staticmethod
    def _dead_letter_row(received: Envelope, route: str, step: str, reason: str,
                         error: str, *, origin: str) -> dict[str, Any]:
        return {"id": derive_id(received.id, route, "dead"), "message_id": received.id,
                "origin_id": origin, "route": route, "step": step, "type": received.type,
                "tenant": received.tenant, "business_no": received.business_no,
                "reason": reason, "last_error": error, "envelope": received.to_json().decode()}

    # -- connector calls
    def _call(self, run: Run, step: Step, call: Call, suffix: str = "") -> Any:
        connector = self.connectors.get(call.connector)
        if connector is None:
            raise RouteError(_("no connector named '{name}'", name=call.connector),
                             route=run.route.name, step=step.label)
        if call.payload is None:
            payload: Any = run.body
        elif isinstance(call.payload, dict):
            data = run.data()
            payload = {}
            for target, expr in call.payload.items():
                value = expr.search(data)
                if value is not None:
                    payload = with_path(payload, target, value)
        else:
            payload = call.payload.search(run.data())
        context = CallContext(
            message_id=run.received.id, business_no=run.business_no, tenant=run.tenant,
            idempotency_key=run.key(step, suffix),
            deadline=(time.monotonic() + call.timeout) if call.timeout else None,
            headers=run.business_headers())
        try:
            return connector.call(call.operation, payload, context)
        except ConnectorError:
            raise
        except Exception as exc:  # noqa: BLE001 - the connector classifies library errors
            classify = getattr(connector, "classify", None)
            if classify is not None:
                raise classify(exc) from exc
            raise PermanentError(str(exc), connector=call.connector,
                                 operation=call.operation) from exc

    def _calls(self, run: Run, step: Step) -> list[Any]:
        calls: list[Call] = step.compiled["calls"]
        if len(calls) == 1:
            return [self._call(run, step, calls[0])]
        if not step.compiled["parallel"]:
            return [self._call(run, step, c, f"#{i}") for i, c in enumerate(calls)]
        each = [functools.partial(self._call, run, step, c, f"#{i}") for i, c in enumerate(calls)]
        if greenloop.on_loop():  # on the inbound server's loop: a greenlet per call
            outcomes = greenloop.gather(each)
        else:
            futures = [self._pool(run.route.name).submit(call) for call in each]
            outcomes = [fut.exception() or fut.result() for fut in futures]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # the first failure, once every call has ended
        return outcomes

    def _pool(self, route: str) -> ThreadPoolExecutor:
        with self._fanout_lock:
            pool = self._fanout.get(route)
            if pool is None:
                pool = self._fanout[route] = ThreadPoolExecutor(
                    max_workers=FANOUT_THREADS, thread_name_prefix=f"fanout-{route}")
            return pool

    def close(self) -> None:
        with self._fanout_lock:
            pools, self._fanout = list(self._fanout.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- deliveries
    def route_queue(self, route: str) -> str:
        return self.routes[route].queue

    def publish(self, env: Envelope, queue: str | None = None) -> None:
        self.broker.publish(envelope_json(env), env.type, queue=queue, message_id=env.id)
        self.mw.on_publish(env)

    def _finish(self, run: Run) -> bool:
        for item in run.out:
            self.publish(item.envelope, item.queue)
        # Keyed by the number the run ends with (``set`` may have re-keyed it); the
        # former numbers keep the run's hops as the hand-over it was.
        return self.store.finish(Finish(
            message_id=run.received.id, route=run.route.name, outcome=run.outcome,
            tenant=run.tenant, business_no=run.business_no,
            type=run.received.type, hops=run.hops, parked=run.parked,
            dead_letter=run.dead_letter, correlation=run.correlation,
            verifications=run.records, progress=run.progress(self.masking),
            also_under=run.former, at=run.clock()))

    def handle(self, route: Route, delivery: Delivery) -> str:
        """Process one delivery of ``route``'s queue; acks or requeues it. Returns the outcome."""
        try:
            env = Envelope.from_json(delivery.body)
        except MessageError as exc:
            return self._malformed(route.name, delivery, exc)
        try:
            if self.store.is_processed(env.id, route.name):
                self.mw.on_duplicate(route.name, env)
                delivery.ack()
                return "duplicate"
            run = self.execute(route, env)
            self._finish(run)
            if run.correlation is not None:
                self._after_register(run.correlation)
        except (StoreError, RecoverableError) as exc:
            # The store or the broker is away: leave the message to be delivered again.
            log.warning("route %s: cannot finish message %s (%s); it will be redelivered",
                        route.name, env.id, exc)
            self.sleep(0.5)
            delivery.reject(requeue=True)
            return "requeued"
        delivery.ack()
        self.mw.on_ack(route.name, env, run.outcome)
        return run.outcome

    def _malformed(self, route: str, delivery: Delivery, exc: Exception) -> str:
        raw = delivery.body.decode("utf-8", errors="replace")
        fake_id = derive_id("malformed", raw)
        try:
            try:
                self.store.add_dead_letter(
                    id=derive_id(fake_id, route, "dead"), message_id=fake_id, origin_id=fake_id,
                    route=route, step="-", type="-", tenant="", business_no="",
                    reason="malformed", last_error=str(exc)[:4000], envelope=raw[:1_000_000],
                    at=self.clock())
            except Exception as store_exc:  # noqa: BLE001 - same poison twice is one dead letter
                if isinstance(store_exc, StoreError):
                    raise
        except StoreError:
            self.sleep(0.5)
            delivery.reject(requeue=True)
            return "requeued"
        delivery.ack()
        return "dead_letter"

    def run_sync(self, route_name: str, envelope: Envelope) -> Envelope:
        """Run an endpoint route inside the caller (the web request) and return its result.

        What the route publishes is published before this returns; a failed step
        raises its error (``MessageError``, ``PermanentError``, ``RecoverableError``,
        ``RouteError``) for the caller to answer with.
        """
        route = self.routes.get(route_name)
        if route is None:
            raise RouteError(_("no route named '{name}'", name=route_name), route=route_name)
        run = self.execute(route, envelope)
        for item in run.out:
            # On the inbound server's loop a publish (with confirms) waits in a thread.
            greenloop.blocking(self.publish, item.envelope, item.queue)
        try:
            self.store.finish(Finish(
                message_id=envelope.id, route=route.name, outcome=run.outcome,
                tenant=run.tenant, business_no=run.business_no, type=envelope.type,
                hops=run.hops, verifications=run.records, record_processed=False,
                progress=run.progress(self.masking), also_under=run.former, at=run.clock()))
        except StoreError:
            log.exception("route %s: trace of %s not recorded", route.name, envelope.id)
        if run.error is not None:
            if isinstance(run.error, HubError):
                raise run.error
            raise RouteError(str(run.error), route=route.name,
                             step=run.failed_step.label if run.failed_step else "") from run.error
        return run.result()

    # -- await: correlation
    def _after_register(self, correlation: dict[str, Any]) -> None:
        """An await step just registered: what it waits for may already be here."""
        try:
            corr = self.store.correlation(correlation["id"])
            if corr is not None and corr["state"] == "waiting":
                self.try_complete(corr)
        except HubError:
            log.exception("await %s: early arrivals not checked (the scheduler will)",
                          correlation["id"])

    def handle_awaited(self, delivery: Delivery) -> str:
        """A message of an awaited type arrived: remember it, resume who waits for it."""
        try:
            env = Envelope.from_json(delivery.body)
        except MessageError:
            delivery.ack()  # the routes that consume this type dead-letter it
            return "malformed"
        try:
            if env.business_no:
                self.store.inbox_add(env.id, env.tenant, env.business_no, env.type,
                                     dict(env.body), self.clock())
                for corr in self.store.waiting_correlations(env.tenant, env.business_no):
                    self.try_complete(corr)
        except (StoreError, RecoverableError) as exc:
            log.warning("await: cannot take message %s (%s); it will be redelivered", env.id, exc)
            self.sleep(0.5)
            delivery.reject(requeue=True)
            return "requeued"
        delivery.ack()
        return "ok"

    def try_complete(self, corr: dict[str, Any]) -> bool:
        """Resume ``corr`` if everything it waits for has arrived."""
        arrivals = self.store.inbox(corr["tenant"], corr["business_no"])
        got: dict[str, dict[str, Any]] = {}
        for pattern in corr["types"]:
            for arrival in reversed(arrivals):  # the latest of each type wins
                if topic_matches(pattern, arrival["type"]):
                    got[pattern] = arrival
                    break
        if corr["mode"] == "any":
            if not got:
                return False
            first = min(got.values(), key=lambda a: a["arrived_at"])
            awaited: Any = first["body"]
        else:
            if len(got) < len(corr["types"]):
                return False
            awaited = (next(iter(got.values()))["body"] if len(got) == 1
                       else {a["type"]: a["body"] for a in got.values()})
        env = Envelope.from_json(corr["envelope"])
        cont = env.evolve(id=derive_id(corr["id"], "resume"),
                          body=with_path(env.body, corr["into"], awaited),
                          headers={**env.headers, H_RESUME: corr["step"], H_RESUME_MODE: "after",
                                   H_CORRELATION: corr["id"]})
        if self.store.decide_correlation(corr["id"], "resumed", self.clock(),
                                         cont.to_json().decode()):
            self._deliver_decision(corr["id"], corr["route"], cont)
        return True

    def _deliver_decision(self, corr_id: str, route: str, cont: Envelope) -> None:
        if route not in self.routes:
            log.error("await %s: route %s no longer exists", corr_id, route)
            return
        self.publish(cont, self.route_queue(route))
        self.store.close_correlation(corr_id)

    # -- the scheduler's work
    def tick(self, now: float | None = None, limit: int = 200) -> dict[str, int]:
        """Republish due parked messages, time out awaits, redeliver lost decisions."""
        now = self.clock() if now is None else now
        done = {"parked": 0, "timed_out": 0, "redelivered": 0}
        for row in self.store.due_parked(now, limit):
            if row["route"] not in self.routes:
                continue
            if not self.store.claim_parked(row["id"], now, lease=max(60.0, self.redeliver_after)):
                continue
            env = Envelope.from_json(row["envelope"])
            self.publish(env, self.route_queue(row["route"]))
            self.store.delete_parked(row["id"])
            done["parked"] += 1
        for corr in self.store.due_correlations(now, limit):
            if self.try_complete(corr):
                continue
            env = Envelope.from_json(corr["envelope"])
            cont = env.evolve(id=derive_id(corr["id"], "timeout"),
                              headers={**env.headers, H_RESUME: corr["step"],
                                       H_RESUME_MODE: "timeout", H_CORRELATION: corr["id"]})
            if self.store.decide_correlation(corr["id"], "timed_out", now, cont.to_json().decode()):
                self._deliver_decision(corr["id"], corr["route"], cont)
                done["timed_out"] += 1
        for corr in self.store.undelivered_decisions(now - self.redeliver_after, limit):
            self._deliver_decision(corr["id"], corr["route"], Envelope.from_json(corr["envelope"]))
            done["redelivered"] += 1
        return done

    def purge(self, now: float | None = None) -> None:
        """Retention: awaited messages nobody claimed, and idempotency records older
        than ``processed_ttl`` (the window in which a duplicate is recognised)."""
        now = self.clock() if now is None else now
        self.store.purge_inbox(now - self.inbox_ttl)
        self.store.purge_processed(now - self.processed_ttl)


# -- step runners -----------------------------------------------------------

def _run_validate(engine: Engine, step: Step, run: Run) -> str:
    c = step.compiled
    target = c["path"].search(run.data()) if c["path"] is not None else run.body
    violations = engine.validator(c["schema"], target)
    if violations:
        first = violations[0]
        raise MessageError(
            _("message does not match schema '{name}': {first}", name=c["schema"], first=str(first))
            + ("" if len(violations) == 1 else _(" (and {n} more)", n=len(violations) - 1)),
            [(getattr(v, "path", ""), getattr(v, "message", str(v))) for v in violations])
    return ""


def _run_map(engine: Engine, step: Step, run: Run) -> str:
    data = run.data()
    out: dict[str, Any] = dict(run.body) if step.compiled["merge"] else {}
    for target, expr in step.compiled["fields"].items():
        value = expr.search(data)
        if value is not None:
            out = with_path(out, target, value)
    run.body = out
    return ""


def _run_filter(engine: Engine, step: Step, run: Run) -> str:
    if not _truthy(step.compiled["expr"].search(run.data())):
        raise _Stop("filtered", "filtered out")
    return ""


def _choose(step: Step, run: Run) -> tuple[list[Step], str]:
    data = run.data()
    for i, cond in enumerate(step.compiled["when"]):
        if _truthy(cond.search(data)):
            return step.branches.get(f"when.{i}") or [], f"when {i}"
    return step.branches.get("otherwise") or [], "otherwise"


def _run_choice(engine: Engine, step: Step, run: Run) -> str:  # pragma: no cover
    raise AssertionError("choice is run by Engine._step")


def _merge_reply(run: Run, into: str | None, reply: Any, where: str) -> None:
    if into:
        run.body = with_path(run.body, into, reply)
    elif isinstance(reply, Mapping):
        run.body = {**run.body, **reply}
    elif reply is not None:
        run.body = with_path(run.body, where, reply)


def _run_enrich(engine: Engine, step: Step, run: Run) -> str:
    calls: list[Call] = step.compiled["calls"]
    replies = engine._calls(run, step)
    for call, reply in zip(calls, replies, strict=True):
        _merge_reply(run, call.into, reply, call.operation)
        if step.compiled.get("record"):
            run.records.append({"kind": step.compiled["record"], "connector": call.connector,
                                "operation": call.operation, "result": dumps(reply)})
    return ""


def _run_to(engine: Engine, step: Step, run: Run) -> str:
    calls: list[Call] = step.compiled["calls"]
    replies = engine._calls(run, step)
    for call, reply in zip(calls, replies, strict=True):
        if call.into:
            run.body = with_path(run.body, call.into, reply)
    return ""


def _run_split(engine: Engine, step: Step, run: Run) -> str:
    items = step.compiled["items"].search(run.data())
    if items is None:
        items = []
    elif not isinstance(items, list):
        items = [items]
    size = len(items)
    own = step.compiled["business_no"]
    for i, item in enumerate(items):
        body = item if isinstance(item, Mapping) else {"value": item}
        number = own.search(item) if own is not None else None
        run.emit(step.spec["publish"], body, step, i,
                 headers={"x-split-index": str(i), "x-split-size": str(size)},
                 business_no=None if number in (None, "") else str(number))
    return f"{size} items"


def _run_await(engine: Engine, step: Step, run: Run) -> str:
    if not run.business_no:
        raise RouteError(_("await needs a business number to correlate by"),
                         route=run.route.name, step=step.label)
    corr_id = derive_id(run.received.id, run.route.name, step.id, "await")
    env = run.state(id=derive_id(corr_id, "state"), headers={})
    run.correlation = {
        "id": corr_id, "tenant": run.tenant, "business_no": run.business_no,
        "route": run.route.name, "step": step.id, "types": json.dumps(list(step.spec["types"])),
        "mode": step.compiled["mode"], "into": step.compiled["into"],
        "deadline": run.clock() + float(step.spec["timeout"]),
        "envelope": env.to_json().decode()}
    raise _Stop("awaiting", "awaiting " + ", ".join(step.spec["types"]))


def _body_of(spec: Any, data: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    if spec is None:
        return body
    if isinstance(spec, dict):
        out: dict[str, Any] = {}
        for target, expr in spec.items():
            value = expr.search(data)
            if value is not None:
                out = with_path(out, target, value)
        return out
    value = spec.search(data)
    return value if isinstance(value, dict) else {"value": value}


def _run_publish(engine: Engine, step: Step, run: Run) -> str:
    c = step.compiled
    body = _body_of(c["body"], run.data(), run.body)
    env = run.emit(c["type"], body, step)
    return env.type


def _run_wire_tap(engine: Engine, step: Step, run: Run) -> str:
    if "publish" in step.compiled:
        run.emit(step.compiled["publish"], run.body, step)
        return step.compiled["publish"]
    try:
        engine._calls(run, step)
    except Exception as exc:  # noqa: BLE001 - a wire tap never fails the route
        log.warning("route %s: wire tap %s failed: %s", run.route.name, step.label, exc)
        return f"tap failed: {type(exc).__name__}"
    return ""


def _run_throttle(engine: Engine, step: Step, run: Run) -> str:
    waited = step.compiled["bucket"].take()
    return f"waited {waited * 1000:.0f} ms" if waited else ""


def _run_set(engine: Engine, step: Step, run: Run) -> str:
    c = step.compiled
    data = run.data()
    for name, expr in c["headers"].items():
        value = expr.search(data)
        if value is None:
            run.headers.pop(name, None)
        else:
            run.headers[name] = value if isinstance(value, str) else json.dumps(value,
                                                                              ensure_ascii=False)
    tenant, business_no = run.tenant, run.business_no
    if c["tenant"] is not None:
        tenant = c["tenant"].search(data)
        if not isinstance(tenant, str) or not (len(tenant) == 6 and tenant.isdigit()):
            raise MessageError(_("tenant '{tenant}' must be the county's 6-digit division code",
                                 tenant=tenant))
    if c["business_no"] is not None:
        value = c["business_no"].search(data)
        business_no = "" if value is None else str(value)
    if (tenant, business_no) == (run.tenant, run.business_no):
        return ""
    detail = f"{run.tenant}/{run.business_no or '-'} -> {tenant}/{business_no or '-'}"
    run.rekey(tenant, business_no)
    return detail


def _run_require_materials(engine: Engine, step: Step, run: Run) -> str:
    c = step.compiled
    data = run.data()
    reg_type = c["registration_type"].search(data)
    checklist = c["checklist"]
    required = checklist.get(str(reg_type)) if reg_type is not None else None
    if required is None:
        required = checklist.get("default") or []
    materials = c["materials"].search(data) or []
    if not isinstance(materials, list):
        materials = []
    names: dict[str, int] = {}
    types: dict[str, int] = {}
    for m in materials:
        if isinstance(m, Mapping):
            if isinstance(m.get("name"), str):
                names[m["name"]] = names.get(m["name"], 0) + 1
            if isinstance(m.get("type"), str):
                types[m["type"]] = types.get(m["type"], 0) + 1
    missing, by_type = [], []
    # Items named exactly are matched first, so a material is not counted twice.
    for item in required:
        if item.get("optional"):
            continue
        if names.get(item["name"], 0) > 0:
            names[item["name"]] -= 1
            if item.get("type") and types.get(item["type"], 0) > 0:
                types[item["type"]] -= 1
        else:
            by_type.append(item)
    for item in by_type:
        kind = item.get("type")
        if kind and types.get(kind, 0) > 0:
            types[kind] -= 1
        else:
            missing.append(item)
    if not missing:
        return f"{len(required)} required, all present"
    now = run.clock()
    deadline = time.strftime("%Y-%m-%d", time.localtime(now + 86400 * c["deadline_days"]))
    items = []
    for item in missing:
        entry = {"material_name": item["name"],
                 "description": _("please supply: {name}", name=item["name"])}
        if item.get("type"):
            entry["material_type"] = item["type"]
        items.append(entry)
    body = {"business_no": run.business_no,
            "requested_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "organisation": {"name": engine.organisation or run.tenant,
                             "division_code": run.tenant},
            "items": items, "deadline": deadline}
    run.emit(c["publish"], body, step)
    run.progress_extra = {"stage": "correction", "status": "in_progress"}
    raise _Stop("correction_requested", f"missing: {', '.join(i['name'] for i in missing)}")


STEP_RUNNERS: dict[str, Callable[[Engine, Step, Run], str]] = {
    "validate": _run_validate,
    "map": _run_map,
    "filter": _run_filter,
    "choice": _run_choice,
    "enrich": _run_enrich,
    "to": _run_to,
    "split": _run_split,
    "await": _run_await,
    "publish": _run_publish,
    "wire_tap": _run_wire_tap,
    "throttle": _run_throttle,
    "set": _run_set,
    "require_materials": _run_require_materials,
}

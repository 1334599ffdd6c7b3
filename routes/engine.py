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

Steps: each kind's module in ``routes.steps`` says what it does (expressions
are JMESPath over the body, which also holds ``_type``, ``_tenant``,
``_business_no``, ``_id``, ``_source``, ``_headers`` and ``_now``). A run with a business
number updates the application's progress from the message it received and
then from the body it ends with (unless the run failed), so a route that maps
``stage`` / ``status`` moves the progress itself.

Errors (``on_error``): a ``RecoverableError`` is retried in place
(``retry: {attempts, backoff, max_backoff}``, default 2 attempts); then by
``then`` (default ``park``): ``park`` stores the message as it was at the
failing step and republishes it ``park_for`` seconds later (default 60) to
resume at that step, up to ``park_max`` times (default 10) before it is
dead-lettered with reason ``park_max``; ``dead_letter`` dead-letters at once;
``fallback`` hands the message (with ``x-hub-error``) to the ``fallback``
route. A ``PermanentError`` (reason ``permanent``), a schema violation
(``schema``) or any other failure (``error``) is dead-lettered, or handed to
the fallback route when ``then: fallback``. A dead letter keeps the message
as received and as it was at the failing step; ``hub dlq replay`` resumes at
that step (``--from-start``: the whole route again).

Routes ``from: {endpoint: {…, reply: true}}`` run synchronously inside the
web request (``Engine.run_sync``): they may not ``await``, and errors are
raised to the caller instead of parking.
"""


from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from bdchub.connectors.base import CallContext
from bdchub.core import greenloop
from bdchub.core.backoff import Backoff
from bdchub.core.broker import Broker, Delivery, Outbound
from bdchub.core.broker.grouped import GroupPublisher
from bdchub.core.envelope import Envelope, Hop
from bdchub.core.errors import (
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
from bdchub.core.logs import log_context
from bdchub.core.masking import Masker
from bdchub.core.store import Finish, Store

from .body import build
from .compiler import Route
from .correlation import Correlations
from .headers import H_ERROR, H_FAILED_ROUTE, H_FAILED_STEP, H_PARK_COUNT, H_RESUME, H_RESUME_MODE
from .middleware import Middleware, Middlewares
from .progress import ApplicantKeys
from .run import Outgoing, Run
from .steps.base import Branch, Call, Step, StepKind, Stop
from .tenants import Tenancy, runtime_name

log = logging.getLogger("bdchub.routes")

#: Threads of each route's pool for `parallel: true` recipient lists (off the event loop).
FANOUT_THREADS = 8

Validator = Callable[[str, Any], list]


def _warn_failed(run: Run, masking: Masker) -> None:
    """One warning for a message parked or dead-lettered, once its fate is stored
    (a run whose finish failed is redelivered and says it then)."""
    step = run.failed_step.label if run.failed_step else ""
    with log_context(step=step):
        _warn_outcome(run, step, masking)


def _warn_outcome(run: Run, step: str, masking: Masker) -> None:
    # An endpoint's error may quote what it refused (an ID number): masked like the store's.
    error = (masking.text(f"{type(run.error).__name__}: {run.error}")[:500]
             if run.error else "")
    if run.outcome == "parked" and run.parked:
        log.warning(_("route {route}: message parked at step {step} (parking {count}), "
                      "tried again in {seconds:.0f} s: {error}", route=run.route.name,
                      step=step, count=run.parked["park_count"],
                      seconds=run.route.on_error.park_for, error=error),
                    extra={"event": "message.parked", "park_count": run.parked["park_count"]})
    elif run.outcome == "dead_letter" and run.dead_letter:
        log.warning(_("route {route}: message dead-lettered at step {step} ({reason}): "
                      "{error}; see hub dlq show {id}", route=run.route.name, step=step,
                      reason=run.dead_letter["reason"], error=error,
                      id=run.dead_letter["id"]),
                    extra={"event": "message.dead_lettered",
                           "reason": run.dead_letter["reason"],
                           "dead_letter_id": run.dead_letter["id"]})


def _failure_audit(run: Run, masking: Masker) -> tuple[str, dict[str, Any]] | None:
    """The audit record of a message parked or dead-lettered (issue #13: exceptions
    are audited), its error masked as the log masks it; None for any other outcome."""
    row = run.parked if run.outcome == "parked" else (
        run.dead_letter if run.outcome == "dead_letter" else None)
    if not row:
        return None
    fields: dict[str, Any] = {
        "route": run.route.name, "step": row["step"], "message_id": run.received.id,
        "tenant": run.tenant, "business_no": run.business_no, "reason": row["reason"],
        "error": (masking.text(f"{type(run.error).__name__}: {run.error}")[:500]
                  if run.error else "")}
    if run.outcome == "parked":
        return "message.parked", {**fields, "parked": row["id"],
                                  "park_count": row["park_count"], "due_at": row["due_at"]}
    return "message.dead_lettered", {**fields, "dead_letter": row["id"]}


def _log_audit(event: str, **fields: Any) -> None:
    log.info("audit %s %s", event, fields)


def _default_validator(name: str, instance: Any) -> list:
    from bdchub.schemas import catalog

    return catalog.validate(name, instance)


def _outbound(item: Outgoing) -> Outbound:
    return Outbound(item.envelope.to_json(), item.envelope.type, item.queue, item.envelope.id)


class _StepFailed(Exception):  # noqa: N818 - control flow: a step failed after its retries
    def __init__(self, step: Step, error: BaseException):
        self.step = step
        self.error = error


class Engine:
    """Runs compiled routes over messages; knows the store, broker and connectors."""

    def __init__(self, routes: Mapping[str, Route], *, connectors: Mapping[str, Any],
                 store: Store, broker: Broker, middleware: Middleware | None = None,
                 validator: Validator | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = greenloop.sleep, masking: Masker | None = None,
                 tenant: str = "", organisation: str = "", prefix: str = "bdchub",
                 await_queue: str | None = None, redeliver_after: float = 30.0,
                 inbox_ttl: float = 7 * 86400.0, processed_ttl: float = 30 * 86400.0,
                 applicant_keys: ApplicantKeys | None = None,
                 audit: Callable[..., None] | None = None, tenancy: Tenancy | None = None):
        self.routes = dict(routes)
        #: where each tenant's calls of a shared connector name go (``routes.tenants``)
        self.tenancy = tenancy or Tenancy()
        # The hub's audit log (``audit`` steps); without one the records go to the log.
        self.audit: Callable[..., None] = audit or _log_audit
        self.connectors = connectors
        self.store = store
        self.broker = broker
        self.mw = middleware if middleware is not None else Middlewares()
        self.validator = validator or _default_validator
        self.clock = clock
        self.sleep = sleep
        self.masking = masking or Masker()
        self.applicant_keys = applicant_keys or ApplicantKeys.from_sealer(store.sealer)
        self.tenant = tenant
        self.organisation = organisation or tenant
        self.prefix = prefix
        self.await_queue = await_queue or f"{prefix}.await"
        self.redeliver_after = redeliver_after
        self.inbox_ttl = inbox_ttl
        self.processed_ttl = processed_ttl
        self.correlations = Correlations(
            store, queue_of=lambda name: self.routes[name].queue if name in self.routes else None,
            publish=lambda env, queue: self.publish(env, queue), clock=clock, sleep=sleep,
            redeliver_after=redeliver_after, await_store=self.await_store)
        # One pool per route: recipients that hang fill their own route's pool only.
        self._fanout: dict[str, ThreadPoolExecutor] = {}
        self._fanout_lock = threading.Lock()
        # What endpoint routes publish, published together with other requests'.
        self._request_publishes = GroupPublisher(broker)

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
        except Stop as stop:
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
                raise _StepFailed(steps[0] if steps else Step("resume", None, "?", StepKind()), RouteError(
                    _("the resume point {path} no longer exists in route '{route}'",
                      path=".".join(map(str, resume)), route=run.route.name),
                    route=run.route.name))
            step, rest = steps[idx], resume[1:]
            if rest and step.impl.reruns_whole:
                start = idx
            elif not rest:
                if mode == "at":
                    start = idx
                elif mode == "timeout":
                    self._hop(run, step, run.clock(), 0.0, "timeout", "await timed out")
                    self._run_list(step.branches.get("on_timeout") or [], run, None, "after")
                    raise Stop("timed_out")
                else:
                    self._hop(run, step, run.clock(), 0.0, "ok", "resumed")
                    start = idx + 1
            else:
                # A branch key is one token (otherwise) or two (when.0).
                pair = ".".join(map(str, rest[:2]))
                if len(rest) >= 2 and pair in step.branches:
                    key, sub = pair, rest[2:]
                else:
                    key, sub = str(rest[0]), rest[1:]
                branch = step.branches.get(key)
                if branch is None:
                    raise _StepFailed(step, RouteError(
                        _("the resume point {path} no longer exists in route '{route}'",
                          path=".".join(map(str, resume)), route=run.route.name),
                        route=run.route.name))
                self._run_list(branch, run, sub, mode)
                if key == "on_timeout":  # an await's timeout branch ends the route
                    raise Stop("timed_out")
                start = idx + 1
        for step in steps[start:]:
            self._step(step, run)

    def _hop(self, run: Run, step: Step, started: float, ms: float, outcome: str,
             detail: str = "") -> Hop:
        calls: list[Call] = step.compiled.get("calls") or []
        hop = Hop(route=run.route.name, step=step.label + run.scope, started_at=started,
                  duration_ms=round(ms, 3), outcome=outcome, detail=detail[:500],
                  connector=",".join(dict.fromkeys(c.connector for c in calls)),
                  operation=",".join(dict.fromkeys(c.operation for c in calls)))
        run.hops.append(hop)
        self.mw.after_step(run.route.name, step, run, hop)
        return hop

    def run_steps(self, steps: list[Step], run: Run) -> None:
        """Run nested ``steps`` over ``run`` now, each with its hop and error policy
        (for a kind that runs its branch more than once, such as ``each``)."""
        for step in steps:
            self._step(step, run)

    def _step(self, step: Step, run: Run) -> None:
        with log_context(step=step.label + run.scope):
            self._run_step(step, run)

    def _run_step(self, step: Step, run: Run) -> None:
        policy = run.route.on_error
        self.mw.before_step(run.route.name, step, run)
        started = run.clock()
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = step.impl.run(self, step, run)
                break
            except Stop as stop:
                self._hop(run, step, started, (time.perf_counter() - t0) * 1000,
                          "awaiting" if stop.outcome == "awaiting" else "skipped",
                          stop.detail or stop.outcome)
                raise
            except RecoverableError as exc:
                if attempt >= max(1, policy.attempts):
                    return self._step_failed(step, run, started, t0, exc)
                # A Retry-After is honoured up to the policy's cap: a worker thread
                # waits here, and parking is the place for long waits.
                self.sleep(min(policy.max_backoff, Backoff(policy.backoff, policy.max_backoff)
                               .delay(attempt, retry_after=exc.retry_after)))
            except _StepFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a step is handled by policy
                return self._step_failed(step, run, started, t0, exc)
        if isinstance(outcome, Branch):
            # The step's own hop comes before its branch's hops.
            self._hop(run, step, started, (time.perf_counter() - t0) * 1000, "ok", outcome.detail)
            for nested in outcome.steps:
                self._step(nested, run)
            return None
        self._hop(run, step, started, (time.perf_counter() - t0) * 1000, "ok", outcome or "")
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
        # What the steps before made of the message: a replay goes on from here, so
        # they are not done (and their calls not sent) a second time.
        run.dead_letter["state"] = run.state(
            id=derive_id(run.received.id, run.route.name, "dead-state"),
            headers={H_RESUME: step.id, H_RESUME_MODE: "at"}).to_json().decode()
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
        # The run's tenant picks its own connector or its parameters (docs/tenants.md).
        use = self.tenancy.connector(run.tenant, call.connector)
        connector = self.connectors.get(use.connector)
        if connector is None:
            raise RouteError(_("no connector named '{name}'", name=use.connector),
                             route=run.route.name, step=step.label)
        if call.payload is None:
            payload: Any = run.body
        elif isinstance(call.payload, dict):
            payload = build(call.payload, run.data())
        else:
            payload = call.payload.search(run.data())
        payload = use.payload(payload)
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
            raise connector.classify(exc) from exc

    def call_connectors(self, run: Run, step: Step) -> list[Any]:
        """The replies of the step's connector calls, in order (see ``steps.calling``)."""
        calls: list[Call] = step.compiled["calls"]
        if len(calls) == 1:
            return [self._call(run, step, calls[0])]
        if not step.compiled["parallel"]:
            return [self._call(run, step, c, f"#{i}") for i, c in enumerate(calls)]
        each = [functools.partial(self._call, run, step, c, f"#{i}") for i, c in enumerate(calls)]
        if greenloop.on_loop():  # on the inbound server's loop: a greenlet per call
            outcomes = greenloop.gather(each)
        else:
            # Each call in a copy of this thread's context: its log fields and the
            # step's span (core.tracing) go along to the pool's thread.
            futures = [self._pool(run.route.name).submit(contextvars.copy_context().run, call)
                       for call in each]
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
        self._request_publishes.close()
        with self._fanout_lock:
            pools, self._fanout = list(self._fanout.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- deliveries
    def route_queue(self, route: str) -> str:
        return self.routes[route].queue

    def publish(self, env: Envelope, queue: str | None = None) -> None:
        self.broker.publish(env.to_json(), env.type, queue=queue, message_id=env.id)
        self.mw.on_publish(env)

    def publish_many(self, items: Sequence[Outgoing]) -> None:
        """Publish what runs emitted, confirmed together (``Broker.publish_many``)."""
        if not items:
            return
        self.broker.publish_many([_outbound(item) for item in items])
        for item in items:
            self.mw.on_publish(item.envelope)

    def _finish(self, run: Run) -> bool:
        for item in run.out:
            self.publish(item.envelope, item.queue)
        return self.store.finish(self.outcome_record(run))

    def outcome_record(self, run: Run) -> Finish:
        """What a consumed message's run leaves in the store (``Store.finish``)."""
        # Keyed by the number the run ends with (``set`` may have re-keyed it); the
        # former numbers keep the run's hops as the hand-over it was.
        return Finish(
            message_id=run.received.id, route=run.route.name, outcome=run.outcome,
            tenant=run.tenant, business_no=run.business_no,
            type=run.received.type, hops=run.hops, parked=run.parked,
            dead_letter=run.dead_letter, correlation=run.correlation,
            verifications=run.records, progress=run.progress(self.masking, self.applicant_keys),
            also_under=run.former, at=run.clock())

    def handle(self, route: Route, delivery: Delivery) -> str:
        """Process one delivery of ``route``'s queue; acks or requeues it. Returns the outcome."""
        try:
            env = Envelope.from_json(delivery.body)
        except MessageError as exc:
            with log_context(route=route.name):
                return self._malformed(route.name, delivery, exc)
        # Every line logged while this message is handled says which it is (core.logs).
        with log_context(message_id=env.id, business_no=env.business_no, route=route.name,
                         tenant=env.tenant):
            return self._handle(route, delivery, env)

    def _handle(self, route: Route, delivery: Delivery, env: Envelope) -> str:
        if not route.serves(env.tenant):
            # A shared queue carries every tenant's messages: this one is run by the
            # route of its tenant, from that route's own queue (docs/tenants.md).
            delivery.ack()
            return "other_tenant"
        try:
            if self.store.is_processed(env.id, route.name):
                self.mw.on_duplicate(route.name, env)
                delivery.ack()
                return "duplicate"
            run = self.execute(route, env)
            self._finish(run)
            if run.correlation is not None:
                self.correlations.registered(run.correlation)
        except (StoreError, RecoverableError) as exc:
            # The store or the broker is away: leave the message to be delivered again.
            log.warning("route %s: cannot finish message %s (%s); it will be redelivered",
                        route.name, env.id, exc)
            self.await_store(exc)
            delivery.reject(requeue=True)
            return "requeued"
        delivery.ack()
        self.mw.on_ack(route.name, env, run.outcome)
        _warn_failed(run, self.masking)
        found = _failure_audit(run, self.masking)
        if found is not None:
            self._audit_exception(*found)
        return run.outcome

    def await_store(self, exc: Exception, limit: float = 30.0) -> None:
        """Before a message the store (or broker) could not take goes back to its queue.

        Half a second; and while the store does not answer, longer (up to ``limit``):
        each return counts against a quorum queue's delivery limit, so an outage
        of the store costs a message one delivery, not one every half second. A
        store that answers (the failure was this message's) has it back at once.
        """
        self.sleep(0.5)
        if not isinstance(exc, StoreError):
            return
        waited, pause = 0.5, 0.5
        while waited < limit:
            try:
                self.store.ping(timeout=2.0)
                return
            except Exception:  # noqa: BLE001 - any failure: still away
                pause = min(pause * 2, 4.0)
                self.sleep(pause)
                waited += pause

    def handle_exhausted(self, delivery: Delivery) -> str:
        """A delivery of the broker's dead-letter queue (see ``routes.exhausted``)."""
        from .exhausted import record_exhausted

        return record_exhausted(self, delivery)

    def _audit_exception(self, event: str, fields: dict[str, Any]) -> None:
        """An exception into the hub's audit log, once the store holds its row and the
        delivery is acked: a failing audit log is reported and the message, already
        where it belongs, is neither lost nor handled twice for it. Parks and dead
        letters are rare, so one fsync'd record each costs the hub nothing it feels."""
        try:
            self.audit(event, **fields)
        except Exception:  # noqa: BLE001 - the message's fate is stored; the audit is the loss
            log.exception(_("route {route}: {event} of message {id} not written to the "
                            "audit log", route=fields.get("route"), event=event,
                            id=fields.get("message_id")))

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
        except StoreError as store_exc:
            self.await_store(store_exc)
            delivery.reject(requeue=True)
            return "requeued"
        delivery.ack()
        error = self.masking.text(str(exc))[:500]
        log.warning(_("route {route}: a malformed message was dead-lettered: {error}",
                      route=route, error=error),
                    extra={"event": "message.dead_lettered", "reason": "malformed"})
        self._audit_exception("message.dead_lettered", {
            "route": route, "step": "-", "message_id": fake_id, "tenant": "",
            "business_no": "", "reason": "malformed", "error": error,
            "dead_letter": derive_id(fake_id, route, "dead")})
        return "dead_letter"

    def run_sync(self, route_name: str, envelope: Envelope) -> Envelope:
        """Run an endpoint route inside the caller (the web request) and return its result.

        What the route publishes is published before this returns; a failed step
        raises its error (``MessageError``, ``PermanentError``, ``RecoverableError``,
        ``RouteError``) for the caller to answer with.
        """
        route = self.route_for(route_name, envelope.tenant)
        if route is None:
            raise RouteError(_("no route named '{name}'", name=route_name), route=route_name)
        with log_context(message_id=envelope.id, business_no=envelope.business_no,
                         route=route.name, tenant=envelope.tenant):
            return self._run_sync(route, envelope)

    def route_for(self, name: str, tenant: str) -> Route | None:
        """Route ``name`` as it runs for ``tenant``: the tenant's own of that name if it
        has one (an endpoint the request's tenant picks), else the shared one."""
        return self.routes.get(runtime_name(name, tenant)) or self.routes.get(name)

    def _run_sync(self, route: Route, envelope: Envelope) -> Envelope:
        run = self.execute(route, envelope)
        if run.out:
            # Published together with what other requests publish meanwhile (one
            # transaction, one confirm wait); the answer waits until the broker has it.
            self._request_publishes.publish([_outbound(item) for item in run.out])
            for item in run.out:
                self.mw.on_publish(item.envelope)
        at = run.clock()
        try:
            # The trace is for hub trace and the call log, not for the answer: the
            # store writes it within a moment, with other requests' (issue #15).
            self.store.defer(Finish(
                message_id=envelope.id, route=route.name, outcome=run.outcome,
                tenant=run.tenant, business_no=run.business_no, type=envelope.type,
                hops=run.hops, record_processed=False, also_under=run.former, at=at))
            # What the answer stands for is written before it goes out: the case's
            # progress (read back by the client next) and the checks' records.
            self.store.finish(Finish(
                message_id=envelope.id, route=route.name, outcome=run.outcome,
                tenant=run.tenant, business_no=run.business_no, type=envelope.type,
                verifications=run.records, record_processed=False,
                progress=run.progress(self.masking, self.applicant_keys), at=at))
        except StoreError:
            log.exception("route %s: trace of %s not recorded", route.name, envelope.id)
        if run.error is not None:
            if isinstance(run.error, HubError):
                raise run.error
            raise RouteError(str(run.error), route=route.name,
                             step=run.failed_step.label if run.failed_step else "") from run.error
        return run.result()

    # -- the scheduler's work
    def handle_awaited(self, delivery: Delivery) -> str:
        """A delivery of the await queue (see ``routes.correlation``)."""
        return self.correlations.handle_awaited(delivery)

    def tick(self, now: float | None = None, limit: int = 200) -> dict[str, int]:
        """Republish due parked messages, time out awaits, redeliver lost decisions."""
        now = self.clock() if now is None else now
        done = {"parked": 0}
        for row in self.store.claim_due_parked(now, limit, lease=max(60.0, self.redeliver_after),
                                               routes=list(self.routes)):
            env = Envelope.from_json(row["envelope"])
            self.publish(env, self.route_queue(row["route"]))
            self.store.delete_parked(row["id"])
            done["parked"] += 1
        return {**done, **self.correlations.tick(now, limit)}

    def purge(self, now: float | None = None) -> None:
        """Retention: awaited messages nobody claimed, and idempotency records older
        than ``processed_ttl`` (the window in which a duplicate is recognised)."""
        now = self.clock() if now is None else now
        self.store.purge_inbox(now - self.inbox_ttl)
        self.store.purge_processed(now - self.processed_ttl)

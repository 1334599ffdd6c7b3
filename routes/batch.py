"""Deliveries of one route handled together: the relay's way through the hub.

A route whose steps all stay in this process (``StepKind.in_process``: no
connector call, no store access, no waiting) spends its time on the hand-overs
around the steps, not in them: a duplicate check, a publish waiting for its
confirm, a store commit and an ack for every message, each a round trip and a
thread woken. ``routes.runtime`` hands such a route's deliveries to
``handle_batch`` as they have come in, and a batch costs one of each::

    parse each ── malformed ──> dead letter, ack (as Engine.handle)
    which of them the route processed already? one query ──> those acked
    run each one's steps
    publish everything the runs emitted; wait for all the confirms together
    every outcome in one store transaction
    ack each

The promise is ``Engine.handle``'s, message by message: a delivery is acked
only once what its run emitted is confirmed and its outcome stored. If the
broker or the store is away, every delivery of the batch goes back to its
queue; the outputs some of them had published carry the same ids when the runs
repeat, and their consumers absorb them. If the store refuses the batch's
transaction, each outcome is written on its own: only those it refuses go back.
A message that comes twice in one batch runs once; the other copy is acked as a
duplicate once the first's outcome is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager

from bdchub.core.broker import Delivery
from bdchub.core.envelope import Envelope
from bdchub.core.errors import MessageError, RecoverableError, StoreError
from bdchub.core.logs import log_context

from .compiler import Route
from .engine import Engine, _failure_audit, _warn_failed
from .run import Run

log = logging.getLogger("bdchub.routes")


def batchable(route: Route) -> bool:
    """Whether every step of ``route``, nested ones too, stays in this process."""
    return not route.sync and all(step.impl.in_process for step in route.walk())


def handle_batch(engine: Engine, route: Route, deliveries: Sequence[Delivery]) -> list[str]:
    """Process ``deliveries`` of ``route``'s queue; ack or requeue each. Returns
    the outcomes (one per delivery, in no particular order)."""
    outcomes: list[str] = []
    received: list[tuple[Delivery, Envelope]] = []
    for delivery in deliveries:
        try:
            env = Envelope.from_json(delivery.body)
        except MessageError as exc:
            with log_context(route=route.name):
                outcomes.append(engine._malformed(route.name, delivery, exc))
            continue
        if not route.serves(env.tenant):  # run by its tenant's own route (Engine.handle)
            delivery.ack()
            outcomes.append("other_tenant")
            continue
        received.append((delivery, env))
    if not received:
        return outcomes
    try:
        done = engine.store.processed_among([env.id for _d, env in received], route.name)
    except StoreError as exc:
        return outcomes + _requeue(engine, route, [d for d, _env in received], exc)
    runs: list[tuple[Delivery, Run]] = []
    repeats: list[tuple[Delivery, Envelope]] = []
    ran: set[str] = set()
    for delivery, env in received:
        if env.id in done:
            engine.mw.on_duplicate(route.name, env)
            delivery.ack()
            outcomes.append("duplicate")
        elif env.id in ran:
            repeats.append((delivery, env))
        else:
            ran.add(env.id)
            with _context(route, env):
                runs.append((delivery, engine.execute(route, env)))
    try:
        engine.publish_many([item for _d, run in runs for item in run.out])
    except RecoverableError as exc:
        return outcomes + _requeue(engine, route, [d for d, _run in runs]
                                   + [d for d, _env in repeats], exc)
    failed = _store(engine, [run for _d, run in runs])
    if failed is not None and len(failed) == len(runs):
        return outcomes + _requeue(engine, route, [d for d, _run in runs]
                                   + [d for d, _env in repeats], next(iter(failed.values())))
    refused: list[Delivery] = []
    for delivery, run in runs:
        with _context(route, run.received):
            if failed and run.received.id in failed:
                log.warning("route %s: cannot finish message %s (%s); it will be redelivered",
                            route.name, run.received.id, failed[run.received.id])
                refused.append(delivery)
                continue
            if run.correlation is not None:
                engine.correlations.registered(run.correlation)
            delivery.ack()
            engine.mw.on_ack(route.name, run.received, run.outcome)
            outcomes.append(run.outcome)
            _warn_failed(run, engine.masking)
            found = _failure_audit(run, engine.masking)
            if found is not None:
                engine._audit_exception(*found)
    for delivery, env in repeats:
        if failed and env.id in failed:
            refused.append(delivery)
            continue
        engine.mw.on_duplicate(route.name, env)
        delivery.ack()
        outcomes.append("duplicate")
    if failed:  # once the others are acked: the pause is for the refused ones
        engine.await_store(next(iter(failed.values())))
        for delivery in refused:
            delivery.reject(requeue=True)
        outcomes.extend(["requeued"] * len(refused))
    return outcomes


def _store(engine: Engine, runs: list[Run]) -> dict[str, StoreError] | None:
    """Every run's outcome in one transaction; if the store refuses it, each on its
    own, so that one outcome the store cannot take (a value too long for its column)
    does not send the others back with it, round after round, towards a quorum
    queue's delivery limit. None if all are stored, else the refused by message id."""
    records = [engine.outcome_record(run) for run in runs]
    try:
        engine.store.finish_many(records)
        return None
    except StoreError as exc:
        if len(records) == 1 or not _answers(engine):
            return {record.message_id: exc for record in records}
    failed: dict[str, StoreError] = {}
    for record in records:
        try:
            engine.store.finish_many([record])
        except StoreError as exc:
            failed[record.message_id] = exc
    return failed or None


def _answers(engine: Engine) -> bool:
    """Whether the store answers (a store that is away would refuse each outcome too,
    each after its own wait)."""
    try:
        engine.store.ping(timeout=2.0)
    except Exception:  # noqa: BLE001 - any failure: away
        return False
    return True


def _context(route: Route, env: Envelope) -> AbstractContextManager[None]:
    return log_context(message_id=env.id, business_no=env.business_no, route=route.name,
                       tenant=env.tenant)


def _requeue(engine: Engine, route: Route, deliveries: list[Delivery],
             exc: Exception) -> list[str]:
    """The store or the broker is away: the batch is delivered again, later."""
    log.warning("route %s: cannot finish %d messages (%s); they will be redelivered",
                route.name, len(deliveries), exc)
    engine.await_store(exc)
    for delivery in deliveries:
        delivery.reject(requeue=True)
    return ["requeued"] * len(deliveries)

"""Messages a quorum queue gave up on: handed out more than ``broker.delivery_limit``
times without an ack, RabbitMQ moves them to the broker's dead-letter queue
(``core.broker.kombu_broker``), and the hub records each there as a dead letter of
the route it came from, reason ``delivery_limit``, for ``hub dlq`` and the console
like any other: a message that kills its worker every time, or that the store
refuses every time, stops going round and waits for an operator.

A message whose route had in fact finished it (only its ack was lost, each time)
is not a dead letter: it is acked as the duplicate it is.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bdchub.core.broker import Delivery
from bdchub.core.envelope import Envelope
from bdchub.core.errors import MessageError, StoreError
from bdchub.core.i18n import _
from bdchub.core.logs import log_context

from .headers import H_ORIGIN

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("bdchub.routes")

REASON = "delivery_limit"


def route_of(engine: Engine, queue: str) -> str:
    """The route whose queue is ``queue`` (the queue's own name when none is)."""
    return next((name for name, route in engine.routes.items() if route.queue == queue),
                queue or "-")


def record_exhausted(engine: Engine, delivery: Delivery) -> str:
    """Record one message of the dead-letter queue as a dead letter; ack it once the
    store holds it. Returns the outcome: ``dead_letter``, ``duplicate`` or ``requeued``."""
    route = route_of(engine, delivery.dead_from)
    try:
        env = Envelope.from_json(delivery.body)
    except MessageError as exc:
        with log_context(route=route):
            return engine._malformed(route, delivery, exc)
    with log_context(message_id=env.id, business_no=env.business_no, route=route,
                     tenant=env.tenant):
        error = _("handed out more than {limit} times without being settled (a worker that "
                  "died on it, or a store that refused it each time)",
                  limit=getattr(engine.broker, "delivery_limit", "?"))
        row = engine._dead_letter_row(env, route, "-", REASON, error,
                                      origin=env.headers.get(H_ORIGIN) or env.id)
        try:
            if engine.store.is_processed(env.id, route):
                delivery.ack()
                return "duplicate"
            if engine.store.dead_letter(row["id"]) is None:
                engine.store.add_dead_letter(**row, at=engine.clock())
        except StoreError as exc:
            engine.await_store(exc)
            delivery.reject(requeue=True)
            return "requeued"
        delivery.ack()
        log.warning(_("route {route}: message {id} dead-lettered after its delivery limit",
                      route=route, id=env.id),
                    extra={"event": "message.dead_lettered", "reason": REASON,
                           "dead_letter_id": row["id"]})
        engine._audit_exception("message.dead_lettered", {
            "route": route, "step": "-", "message_id": env.id, "tenant": env.tenant,
            "business_no": env.business_no, "reason": REASON,
            "error": error, "dead_letter": row["id"]})
        return "dead_letter"

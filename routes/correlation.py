"""The await machinery: messages a route waits for, and runs that go on when
they have come (or when the wait is over).

An ``await`` step ends its run with a *correlation* stored beside the run's
other results: tenant, business number, the awaited type patterns, the step,
the deadline and the message as it was. Messages of awaited types reach the
hub's await queue (``{prefix}.await``); each is kept in the store's inbox under
its tenant and business number (``handle_awaited``), and every correlation
waiting on that number is tried (``try_complete``). A correlation is complete
when all its types have arrived (or, with ``mode: any``, one): a continuation
of the stopped message is published to its route, to resume after the await
step with what arrived. The scheduler's tick times out correlations past their
deadline (the continuation resumes into ``on_timeout``) and delivers decisions
whose publish was lost in a crash.

Decisions are taken with a conditional update in the store, so with several
worker processes exactly one resumes a correlation; continuation ids are
derived from the correlation, so a decision delivered twice is absorbed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bdchub.core.broker import Delivery, topic_matches
from bdchub.core.envelope import Envelope
from bdchub.core.errors import HubError, MessageError, RecoverableError, StoreError
from bdchub.core.ids import derive_id
from bdchub.core.store import Store

from .body import with_path
from .headers import H_CORRELATION, H_RESUME, H_RESUME_MODE

log = logging.getLogger("bdchub.routes")

Publish = Callable[[Envelope, str], None]


class Correlations:
    """Waiting runs, the messages they wait for, and their continuations."""

    def __init__(self, store: Store, *, queue_of: Callable[[str], str | None],
                 publish: Publish, clock: Callable[[], float],
                 sleep: Callable[[float], None], redeliver_after: float = 30.0,
                 await_store: Callable[[Exception], None] | None = None):
        self.store = store
        # route name -> its queue, or None when the route is gone
        self.queue_of = queue_of
        self.publish = publish
        self.clock = clock
        self.sleep = sleep
        self.redeliver_after = redeliver_after
        # Before a message goes back to the await queue: each return counts against a
        # quorum queue's delivery limit, so a store outage must cost one, not one a
        # half second (the engine's await_store holds it while the store is away).
        self.await_store = await_store or (lambda exc: self.sleep(0.5))

    def registered(self, correlation: dict[str, Any]) -> None:
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
            self.await_store(exc)
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
            self._deliver(corr["id"], corr["route"], cont)
        return True

    def _deliver(self, corr_id: str, route: str, cont: Envelope) -> None:
        queue = self.queue_of(route)
        if queue is None:
            log.error("await %s: route %s no longer exists", corr_id, route)
            return
        self.publish(cont, queue)
        self.store.close_correlation(corr_id)

    def tick(self, now: float, limit: int = 200) -> dict[str, int]:
        """Time out correlations past their deadline; deliver lost decisions."""
        done = {"timed_out": 0, "redelivered": 0}
        for corr in self.store.due_correlations(now, limit):
            if self.try_complete(corr):
                continue
            env = Envelope.from_json(corr["envelope"])
            cont = env.evolve(id=derive_id(corr["id"], "timeout"),
                              headers={**env.headers, H_RESUME: corr["step"],
                                       H_RESUME_MODE: "timeout", H_CORRELATION: corr["id"]})
            if self.store.decide_correlation(corr["id"], "timed_out", now, cont.to_json().decode()):
                self._deliver(corr["id"], corr["route"], cont)
                done["timed_out"] += 1
        for corr in self.store.undelivered_decisions(now - self.redeliver_after, limit):
            self._deliver(corr["id"], corr["route"], Envelope.from_json(corr["envelope"]))
            done["redelivered"] += 1
        return done

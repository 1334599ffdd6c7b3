"""Spans of route runs and steps (``core.tracing``), made by middleware hooks.

``Hub.from_config`` adds ``TracingMiddleware`` only when tracing is on; a hub
without it does no tracing work at all. For each message a route runs:

- ``route {route}`` (consumer): child of the span whose ``traceparent`` the
  envelope carries (the inbound request, or the step of another route that
  published it), else the start of a new trace;
- ``step {id}:{kind}`` under it, one per step; the connector calls a step makes
  are its children (``connectors.resilience``), and so are the steps an ``each``
  runs.

While a step runs, the run's headers carry that step's ``traceparent``: the
messages it emits, parks or hands to a fallback route carry it on, so their
runs continue the same trace. Attributes name the route, step, message id and
type, tenant and outcome, and the business number masked as logs mask it;
never a body, a name or an ID number.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bdchub.core.logs import mask_business_no
from bdchub.core.otel import failed
from bdchub.core.tracing import TRACESTATE

from .middleware import Middleware

if TYPE_CHECKING:
    from bdchub.core.otel import Tracing


@dataclass(frozen=True)
class _Open:
    """A span a hook opened and made current; the hook that ends it matches ``owner``."""

    owner: Any  # the step, or the envelope of the run
    span: Any
    token: object


# The spans open in this thread or request (a context variable: each worker thread
# and each greenlet of the inbound loop has its own), innermost last.
_open: ContextVar[tuple[_Open, ...]] = ContextVar("bdchub_open_spans", default=())


class TracingMiddleware(Middleware):
    def __init__(self, tracing: Tracing):
        self.tracing = tracing

    def before_message(self, route: str, envelope: Any) -> None:
        span = self.tracing.start(f"route {route}", "consumer", {
            "bdchub.route": route, "bdchub.message.id": envelope.id,
            "bdchub.message.type": envelope.type, "bdchub.tenant": envelope.tenant,
            "bdchub.business_no": mask_business_no(envelope.business_no),
            "bdchub.attempt": envelope.attempt}, parent=envelope.headers)
        self._push(envelope, span)

    def before_step(self, route: str, step: Any, run: Any) -> None:
        span = self.tracing.start(f"step {step.label}", "internal", {
            "bdchub.route": route, "bdchub.step": step.label, "bdchub.step.kind": step.kind})
        self._push(step, span)
        # What the step emits (and the state a park or fallback keeps) goes on from here.
        run.headers.pop(TRACESTATE, None)
        run.headers.update(self.tracing.headers(span))

    def after_step(self, route: str, step: Any, run: Any, hop: Any) -> None:
        opened = _open.get()
        if not opened or opened[-1].owner is not step:
            return  # a hop with no run of its own: a resumed or timed-out await
        span = opened[-1].span
        span.set_attribute("bdchub.outcome", hop.outcome)
        if hop.outcome == "error":
            failed(span, hop.detail.partition(":")[0] or "error")
        self._pop(1)

    def after_message(self, route: str, envelope: Any, outcome: str) -> None:
        opened = _open.get()
        depth = next((len(opened) - i for i, o in enumerate(reversed(opened))
                      if o.owner is envelope), 0)
        if not depth:
            return
        span = opened[-depth].span
        span.set_attribute("bdchub.outcome", outcome)
        if outcome in ("dead_letter", "error"):
            failed(span, outcome)
        # Steps a failure left open end with their run.
        self._pop(depth)

    # -- the open spans
    def _push(self, owner: Any, span: Any) -> None:
        token = self.tracing.enter(span)
        _open.set((*_open.get(), _Open(owner, span, token)))

    def _pop(self, count: int) -> None:
        opened = _open.get()
        for item in reversed(opened[-count:]):
            item.span.end()
            self.tracing.leave(item.token)
        _open.set(opened[:-count])

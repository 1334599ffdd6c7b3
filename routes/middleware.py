"""Hooks around message processing, like dramatiq's middleware.

Every hook is a no-op here; a middleware overrides the ones it needs. Hooks
run in the worker thread that processes the message and must be quick and
must not raise (an exception in a hook is logged and ignored).

==================  ===========================================================
hook                when
==================  ===========================================================
before_message      a route is about to run a message (after the duplicate check)
before_step         a step is about to run
after_step          a step finished; ``hop`` says how (ok, error, skipped, …)
on_error            a step failed for good (after its retries)
after_message       the route run ended with ``outcome`` (completed, filtered,
                    awaiting, parked, dead_letter, fallback, correction_requested,
                    timed_out)
on_ack              the message was acknowledged (its outcome is in the store)
on_duplicate        a delivery was absorbed as a duplicate
on_publish          a message was published (confirmed)
==================  ===========================================================

``MetricsMiddleware`` is the Prometheus one (``bdchub_route_*``).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

log = logging.getLogger("bdchub.routes")


class Middleware:
    def before_message(self, route: str, envelope: Any) -> None:
        """A route is about to run ``envelope``."""

    def before_step(self, route: str, step: Any, run: Any) -> None:
        """``step`` is about to run."""

    def after_step(self, route: str, step: Any, run: Any, hop: Any) -> None:
        """``step`` finished; ``hop`` has its timing and outcome."""

    def on_error(self, route: str, step: Any, run: Any, error: BaseException) -> None:
        """``step`` failed after its retries."""

    def after_message(self, route: str, envelope: Any, outcome: str) -> None:
        """The route run of ``envelope`` ended with ``outcome``."""

    def on_ack(self, route: str, envelope: Any, outcome: str) -> None:
        """The delivery of ``envelope`` was acknowledged."""

    def on_duplicate(self, route: str, envelope: Any) -> None:
        """A delivery of an already processed message was absorbed."""

    def on_publish(self, envelope: Any) -> None:
        """``envelope`` was published and confirmed by the broker."""


class Middlewares(Middleware):
    """Calls every middleware in order, isolating their failures."""

    def __init__(self, items: list[Middleware] | None = None):
        self.items = list(items or [])

    def _call(self, name: str, *args: Any) -> None:
        for item in self.items:
            try:
                getattr(item, name)(*args)
            except Exception:  # noqa: BLE001 - a hook must never break delivery
                log.exception("middleware %s.%s failed", type(item).__name__, name)

    def before_message(self, *a: Any) -> None:
        self._call("before_message", *a)

    def before_step(self, *a: Any) -> None:
        self._call("before_step", *a)

    def after_step(self, *a: Any) -> None:
        self._call("after_step", *a)

    def on_error(self, *a: Any) -> None:
        self._call("on_error", *a)

    def after_message(self, *a: Any) -> None:
        self._call("after_message", *a)

    def on_ack(self, *a: Any) -> None:
        self._call("on_ack", *a)

    def on_duplicate(self, *a: Any) -> None:
        self._call("on_duplicate", *a)

    def on_publish(self, *a: Any) -> None:
        self._call("on_publish", *a)


STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0)


class MetricsMiddleware(Middleware):
    """Prometheus metrics of routes.

    - ``bdchub_route_messages_in_total{route}``: messages a route started;
    - ``bdchub_route_messages_out_total{route}``: messages a route published;
    - ``bdchub_route_outcomes_total{route,outcome}``: how route runs ended;
    - ``bdchub_route_step_seconds{route,kind}``: step latency;
    - ``bdchub_route_parked_total{route}`` / ``bdchub_route_dead_letters_total{route}``;
    - ``bdchub_route_duplicates_total{route}``: deliveries absorbed as duplicates.
    """

    def __init__(self, registry: CollectorRegistry | None = None):
        reg = registry if registry is not None else REGISTRY
        self.registry = reg
        self.messages_in = Counter("bdchub_route_messages_in", "Messages a route started",
                                   ["route"], registry=reg)
        self.messages_out = Counter("bdchub_route_messages_out", "Messages routes published",
                                    ["route"], registry=reg)
        self.outcomes = Counter("bdchub_route_outcomes", "Route runs by outcome",
                                ["route", "outcome"], registry=reg)
        self.step_seconds = Histogram("bdchub_route_step_seconds", "Step latency",
                                      ["route", "kind"], buckets=STEP_BUCKETS, registry=reg)
        self.parked = Counter("bdchub_route_parked", "Messages parked", ["route"], registry=reg)
        self.dead = Counter("bdchub_route_dead_letters", "Messages dead-lettered", ["route"],
                            registry=reg)
        self.duplicates = Counter("bdchub_route_duplicates", "Duplicate deliveries absorbed",
                                  ["route"], registry=reg)

    def before_message(self, route: str, envelope: Any) -> None:
        self.messages_in.labels(route).inc()

    def after_step(self, route: str, step: Any, run: Any, hop: Any) -> None:
        self.step_seconds.labels(route, step.kind).observe(hop.duration_ms / 1000.0)

    def after_message(self, route: str, envelope: Any, outcome: str) -> None:
        self.outcomes.labels(route, outcome).inc()
        if outcome == "parked":
            self.parked.labels(route).inc()
        elif outcome == "dead_letter":
            self.dead.labels(route).inc()

    def on_duplicate(self, route: str, envelope: Any) -> None:
        self.duplicates.labels(route).inc()

    def on_publish(self, envelope: Any) -> None:
        route = envelope.headers.get("x-hub-route", "") if envelope.headers else ""
        self.messages_out.labels(route or "-").inc()


_default: MetricsMiddleware | None = None


def default_metrics() -> MetricsMiddleware:
    """The process-wide metrics middleware on prometheus_client's default registry."""
    global _default
    if _default is None:
        _default = MetricsMiddleware()
    return _default

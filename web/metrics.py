"""Prometheus metrics of the inbound endpoints.

- ``bdchub_inbound_requests_total{endpoint,status}``: answered requests;
- ``bdchub_inbound_rejected_total{endpoint,code}``: refused requests by error code;
- ``bdchub_inbound_latency_seconds{endpoint}``: time to answer;
- ``bdchub_inbound_channel_requests_total{channel,outcome}``: requests of each
  channel's clients (guide §三(一)6: the agency counts every channel), one outcome
  each: ``accepted`` (handed to the hub, or answered by a request/reply route),
  ``refused`` (4xx, a suspended channel's and a route's own refusals included),
  ``error`` (5xx: the hub could not take it);
- ``bdchub_inbound_channel_rejected_total{channel,code}``: the refusals and errors of
  each channel by error code (``channel_suspended``, ``type_forbidden`` …).

``endpoint`` is the route template (``/api/v1/progress/{business_no}``), never
the raw path, and ``channel`` one of the few channels of ``inbound.clients``
(``-`` before a client is known), so label values stay few and carry no personal data.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class InboundMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.registry = registry
        self.requests = Counter("bdchub_inbound_requests_total", "Inbound requests answered",
                                ["endpoint", "status"], registry=registry)
        self.rejected = Counter("bdchub_inbound_rejected_total", "Inbound requests refused",
                                ["endpoint", "code"], registry=registry)
        self.latency = Histogram("bdchub_inbound_latency_seconds", "Time to answer a request",
                                 ["endpoint"], buckets=BUCKETS, registry=registry)
        self.by_channel = Counter("bdchub_inbound_channel_requests_total",
                                  "Inbound requests by the client's channel and outcome",
                                  ["channel", "outcome"], registry=registry)
        self.rejected_by_channel = Counter("bdchub_inbound_channel_rejected_total",
                                           "Inbound requests refused, by the client's "
                                           "channel and error code", ["channel", "code"],
                                           registry=registry)
        self._accepted: dict[str, Any] = {}
        # Children resolved once per label set: labels() costs a lock and a dict build.
        self._children: dict[tuple[str, int], tuple[object, object]] = {}
        self._lock = threading.Lock()

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        pair = self._children.get(key)
        if pair is None:
            with self._lock:
                pair = (self.requests.labels(endpoint, str(status)),
                        self.latency.labels(endpoint))
                self._children[key] = pair
        pair[0].inc()  # type: ignore[attr-defined]
        pair[1].observe(seconds)  # type: ignore[attr-defined]

    def reject(self, endpoint: str, code: str) -> None:
        self.rejected.labels(endpoint, code).inc()

    def channel_accepted(self, channel: str) -> None:
        child = self._accepted.get(channel)
        if child is None:  # on every accepted request: resolve the label set once
            with self._lock:
                child = self._accepted[channel] = self.by_channel.labels(channel or "-",
                                                                         "accepted")
        child.inc()

    def channel_rejected(self, channel: str, status: int, code: str) -> None:
        channel = channel or "-"
        self.by_channel.labels(channel, "error" if status >= 500 else "refused").inc()
        self.rejected_by_channel.labels(channel, code).inc()


_default: InboundMetrics | None = None
_default_lock = threading.Lock()


def default() -> InboundMetrics:
    """The metrics on the process-wide registry, created once."""
    global _default
    with _default_lock:
        if _default is None:
            _default = InboundMetrics(REGISTRY)
        return _default

"""Prometheus metrics of connector calls, per connector and operation.

One ``ConnectorMetrics`` holds every metric object. The hub uses the
module-level one (on ``prometheus_client.REGISTRY`` unless ``use_registry``
chose another); tests build their own on a fresh ``CollectorRegistry``::

    metrics = ConnectorMetrics(CollectorRegistry())
    conn = connectors.build("tax", block, metrics=metrics)
    metrics.registry.get_sample_value("bdchub_connector_calls_total",
                                      {"connector": "tax", "operation": "check"})

Names:

- ``bdchub_connector_calls_total{connector,operation}``: logical calls (a call
  with three attempts counts once);
- ``bdchub_connector_errors_total{connector,operation,error}``: calls that
  failed, by ``error`` = recoverable | permanent | circuit_open | timeout;
- ``bdchub_connector_latency_seconds{connector,operation}``: histogram of a
  call as its caller sees it, retries and waits included;
- ``bdchub_connector_retries_total{connector,operation}``: attempts after the
  first;
- ``bdchub_connector_circuit_state{connector}``: 0 closed, 1 half-open, 2 open;
- ``bdchub_connector_in_flight{connector,operation}``: calls under way.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from bdchub.core.errors import (
    CircuitOpenError,
    ConnectorError,
    RecoverableError,
    TimeoutError_,
)

CIRCUIT_VALUES = {"closed": 0, "half-open": 1, "open": 2}

# Government endpoints answer in tens of milliseconds to tens of seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def error_class(exc: BaseException) -> str:
    """The ``error`` label of a failed call."""
    if isinstance(exc, CircuitOpenError):
        return "circuit_open"
    if isinstance(exc, TimeoutError_):
        return "timeout"
    if isinstance(exc, RecoverableError):
        return "recoverable"
    if isinstance(exc, ConnectorError):
        return "permanent"
    return "permanent"


class ConnectorMetrics:
    """The metric objects of connector calls, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None, prefix: str = "bdchub"):
        self.registry = registry if registry is not None else REGISTRY
        labels = ["connector", "operation"]
        self.calls = Counter(f"{prefix}_connector_calls", "Connector calls",
                             labels, registry=self.registry)
        self.errors = Counter(f"{prefix}_connector_errors", "Failed connector calls by class",
                              [*labels, "error"], registry=self.registry)
        self.latency = Histogram(f"{prefix}_connector_latency_seconds",
                                 "Connector call latency, retries included", labels,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.retries = Counter(f"{prefix}_connector_retries", "Connector call retries",
                               labels, registry=self.registry)
        # With several processes (core.metrics): the worst state any live process
        # sees, and the calls under way in all of them.
        self.circuit = Gauge(f"{prefix}_connector_circuit_state",
                             "Circuit breaker state: 0 closed, 1 half-open, 2 open",
                             ["connector"], registry=self.registry, multiprocess_mode="livemax")
        self.in_flight = Gauge(f"{prefix}_connector_in_flight", "Connector calls under way",
                               labels, registry=self.registry, multiprocess_mode="livesum")

    def set_circuit(self, connector: str, state: str) -> None:
        self.circuit.labels(connector=connector).set(CIRCUIT_VALUES.get(state, 0))


_lock = threading.Lock()
_by_registry: dict[int, ConnectorMetrics] = {}
_default_registry: CollectorRegistry | None = None


def metrics_for(registry: CollectorRegistry | None = None) -> ConnectorMetrics:
    """The metrics on ``registry`` (a name can be registered once per registry,
    so each registry gets one set, created on first use)."""
    registry = registry if registry is not None else REGISTRY
    with _lock:
        found = _by_registry.get(id(registry))
        if found is None or found.registry is not registry:
            found = _by_registry[id(registry)] = ConnectorMetrics(registry)
        return found


def default_metrics() -> ConnectorMetrics:
    """The metrics connectors report to unless told otherwise."""
    return metrics_for(_default_registry)


def use_registry(registry: CollectorRegistry | None) -> ConnectorMetrics:
    """Make connectors built from now on report to ``registry`` (``None``: the
    global ``prometheus_client.REGISTRY`` again)."""
    global _default_registry
    _default_registry = registry
    return default_metrics()
